import json

import pytest

from template.storage import ConfigError, load_storage_config
from template.storage.config import BucketConfig

WRITE_ID, WRITE_SECRET = "WRITEID0123456789ABC", "write-secret-0123456789abcdefghijklmnopqr"


def test_env_config():
    env = {
        "TEMPLATE_S3_ENDPOINT_URL": "http://127.0.0.1:9000",
        "TEMPLATE_S3_BUCKET": "grads",
        "TEMPLATE_S3_WRITE_ACCESS_KEY_ID": WRITE_ID,
        "TEMPLATE_S3_WRITE_SECRET_ACCESS_KEY": WRITE_SECRET,
        "TEMPLATE_S3_READ_ACCESS_KEY_ID": "rid",
        "TEMPLATE_S3_READ_SECRET_ACCESS_KEY": "rsecret",
    }
    cfg = load_storage_config(env=env)
    assert cfg.write == BucketConfig(
        "http://127.0.0.1:9000", "grads", "us-east-1", "path", WRITE_ID, WRITE_SECRET
    )
    assert cfg.read.access_key_id == "rid" and cfg.read.bucket == "grads"


def test_r2_account_derives_endpoint():
    env = {
        "TEMPLATE_S3_R2_ACCOUNT_ID": "ab" * 16,
        "TEMPLATE_S3_BUCKET": "grads",
        "TEMPLATE_S3_WRITE_ACCESS_KEY_ID": WRITE_ID,
        "TEMPLATE_S3_WRITE_SECRET_ACCESS_KEY": WRITE_SECRET,
    }
    cfg = load_storage_config(env=env)
    assert cfg.write.endpoint_url == f"https://{'ab' * 16}.r2.cloudflarestorage.com"
    assert cfg.write.region == "auto" and cfg.read is None


@pytest.mark.parametrize("suffix", [".toml", ".json"])
def test_file_config_and_env_override(tmp_path, suffix):
    data = {
        "storage": {
            "endpoint_url": "http://127.0.0.1:9000",
            "bucket": "from-file",
            "write": {"access_key_id": WRITE_ID, "secret_access_key": WRITE_SECRET},
        }
    }
    path = tmp_path / f"s3{suffix}"
    if suffix == ".json":
        path.write_text(json.dumps(data))
    else:
        path.write_text(
            '[storage]\nendpoint_url = "http://127.0.0.1:9000"\nbucket = "from-file"\n'
            f'[storage.write]\naccess_key_id = "{WRITE_ID}"\nsecret_access_key = "{WRITE_SECRET}"\n'
        )
    cfg = load_storage_config(path, env={})
    assert cfg.write.bucket == "from-file" and cfg.write.secret_access_key == WRITE_SECRET
    cfg = load_storage_config(env={"TEMPLATE_S3_CONFIG": str(path), "TEMPLATE_S3_BUCKET": "env"})
    assert cfg.write.bucket == "env"


def test_missing_and_half_keys_are_clear(tmp_path):
    with pytest.raises(ConfigError, match="TEMPLATE_S3_BUCKET"):
        load_storage_config(env={})
    with pytest.raises(ConfigError, match="TEMPLATE_S3_WRITE_ACCESS_KEY_ID"):
        load_storage_config(env={"TEMPLATE_S3_BUCKET": "b"})
    with pytest.raises(ConfigError, match="half set"):
        load_storage_config(
            env={"TEMPLATE_S3_BUCKET": "b", "TEMPLATE_S3_WRITE_ACCESS_KEY_ID": WRITE_ID}
        )
    bad = tmp_path / "bad.toml"
    bad.write_text(f'secret = "{WRITE_SECRET}" oops')
    with pytest.raises(ConfigError) as e:
        load_storage_config(bad, env={})
    assert WRITE_SECRET not in str(e.value)


def test_repr_masks_secrets():
    env = {
        "TEMPLATE_S3_BUCKET": "grads",
        "TEMPLATE_S3_WRITE_ACCESS_KEY_ID": WRITE_ID,
        "TEMPLATE_S3_WRITE_SECRET_ACCESS_KEY": WRITE_SECRET,
        "TEMPLATE_S3_READ_ACCESS_KEY_ID": "READID",
        "TEMPLATE_S3_READ_SECRET_ACCESS_KEY": "READSECRET",
    }
    cfg = load_storage_config(env=env)
    for text in (repr(cfg), str(cfg), repr(cfg.write), f"{cfg.write}", cfg.write.address):
        assert WRITE_ID not in text and WRITE_SECRET not in text and "READSECRET" not in text
    assert "grads" in repr(cfg.write)
