from _fake import main

main("miner")
