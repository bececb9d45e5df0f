"""The one-command local subnet: a dev chain, a local S3 endpoint, N miners and M validators.

- ``config``     LocalnetConfig and the dev-chain genesis chosen for fast feedback
- ``processes``  start/stop child processes, each with its own log file, no orphans
- ``setup``      wallets, funding, registration, stake, buckets, storage configs, dataset
- ``monitor``    read the nodes' status files and the chain into per-window records
- ``view``       the live status lines
- ``summary``    the final summary (dict / JSON) and the PNG plot
"""
