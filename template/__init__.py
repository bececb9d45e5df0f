"""The subnet package: decentralised SparseLoCo pretraining on Bittensor.

Layout (imports point one way: neurons -> miner/validator -> protocol/training/storage/chain):

- ``chain/``     one narrow async ``Chain`` protocol; bittensor v11 and the embedded dev chain behind it
- ``storage/``   S3-compatible buckets through boto3, object names, published read credentials
- ``training/``  model, data, inner loop, compression, wire format, outer step
- ``protocol/``  windows, deadlines, leader and peer selection, leader documents
- ``miner/``, ``validator/``  the two node loops
"""

__version__ = "0.1.0"

# Bumped whenever the wire format, object names or scoring rules change incompatibly.
# Sent as ``version_key`` with weights and in every upload and document header; object names
# live under ``v{SPEC_VERSION}/``. 2: signed documents are .safetensors envelopes (1 named
# them .json) and the latest-checkpoint pointer carries spec_version. 3: the outer step weighs
# each peer by the share of a window's pages it claims (protocol.aggregation.upload_work).
# 4: uploads are sealed until the cut-off and opened by a key revealed after it (seal.py).
SPEC_VERSION = 4
