"""The console scripts (``pyproject.toml`` [project.scripts]); ``neurons/`` and ``scripts/`` call
the same ``main`` functions. Each checks its flags before importing torch, so a bad value costs
well under a second and exits 2 with one line that names the flag, the rule and the value.

- ``miner``, ``validator``  the two neurons (``seed-miner``, ``seed-validator``)
- ``localnet``              a whole subnet on this machine (``seed-localnet``)
- ``prepare_dataset``       text -> token shards + manifest (``seed-prepare-dataset``)
- ``upload_dataset``        a prepared dataset (and tokenizer) -> the dataset bucket
- ``export_model``          a run's model -> a Hugging Face folder (``seed-export-model``)
- ``min_compute``           the hardware a preset needs (``seed-min-compute``)
"""
