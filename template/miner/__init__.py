"""The miner: train each window on the assigned pages, upload a signed compressed delta, stay in sync.

- ``args``     command-line flags (bittensor style)
- ``state``    local persistence (safetensors + a JSON manifest with sha256s, atomic)
- ``startup``  start-up checks, bucket commitment, initial model and catch-up
- ``clock``    the chain's block height, followed in the background (extrapolated in outages)
- ``trainer``  the training worker thread (the only writer of the model weights)
- ``sync``     applying each window's aggregate, fingerprint checks, re-sync
- ``loop``     the async window loop (training in a thread, comms on the event loop)
- ``main``     build, install signal handlers, run, close (neurons/miner.py calls it)
"""
