from _fake import main

main("validator")
