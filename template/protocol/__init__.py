"""The window protocol: timing, leader choice, peer selection and the leaders' documents."""
