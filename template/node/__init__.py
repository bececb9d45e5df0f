"""Plumbing shared by the miner and the validator: flags, keys, logging, status and metrics."""
