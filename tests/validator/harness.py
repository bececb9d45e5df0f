"""A small subnet in one event loop for validator tests: dev chain, local S3, honest and
adversarial uploaders built on the training core (not on template/miner)."""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
import struct
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch

from template.chain.devchain.testing import running_devchain
from template.hparams import HParams, hparams_hash, load_hparams
from template.protocol.uploads import stored_objects
from template.protocol.windows import WindowClock
from template.signing import dev_keypair, sign
from template.storage import NodeStorageConfig, StorageClient, encode_commitment
from template.storage.local_server import start_local_s3
from template.training.compression import Compressor
from template.training.inner import make_optimizer, train_steps
from template.training.outer import pseudo_gradient, snapshot
from template.training.pages import PageDataset, batches
from template.training.shards import TokenStream
from template.training.wire import decode_upload, encode_upload, upload_size_cap
from template.validator import Validator, ValidatorConfig
from template.validator.secret import SECRET_FILE, write_secret
from template.validator.startup import prepare_validator

ALICE = "//Alice"


def small_hparams() -> HParams:
    return load_hparams("tiny").replace(
        **{
            "model.hidden_size": 64,
            "model.intermediate_size": 128,
            "model.num_layers": 2,
            "model.num_heads": 4,
            "model.num_kv_heads": 4,
            "model.seq_len": 32,
            "train.inner_steps": 4,
            "train.batch_size": 4,
            "train.warmup_steps": 1,
            "data.seqs_per_page": 2,
            "compression.chunk": 256,
            "compression.topk": 16,
            "window.blocks_per_window": 20,
            "window.upload_blocks": 8,
            "window.grace_blocks": 1,
            "window.reveal_blocks": 2,
            "window.publish_blocks": 12,
            "window.peers_per_window": 3,
            "window.reserve_peers": 1,
            "window.checkpoint_every": 2,
            "window.leader_timeout_windows": 2,
        }
    )


def validator_config(**over) -> ValidatorConfig:
    base = dict(
        gather_clock_skew=1.0,
        leader_follow_wait=0.0,
        gather_time_budget=20.0,
        # these tests run windows after the fact on a 0.1 s block chain: they judge uploads,
        # not the leader's timing (tests/validator/test_deadline.py does)
        eval_meet_deadline=False,
    )
    return ValidatorConfig(**{**base, **over})


def shapes_of(model) -> dict[str, tuple[int, ...]]:
    return {n: tuple(p.shape) for n, p in model.named_parameters()}


# --- uploads ----------------------------------------------------------------------------
@dataclass
class Uploader:
    """One miner of the test: ``kind`` says how it behaves."""

    name: str
    kind: str  # honest, copier, noise, zero, replayer, late, nan, forged, oversized, wrong_pages
    key: object
    steps: int = 4
    pages: int = 2
    uid: int = -1
    client: StorageClient | None = None
    compressor: Compressor | None = None
    history: dict[int, bytes] = field(default_factory=dict)  # window -> its signed upload
    reveals: dict[int, tuple[str, bytes]] = field(default_factory=dict)  # keys still held

    @property
    def hotkey(self) -> str:
        return self.key.ss58_address


def train_delta(u: Uploader, model, hp: HParams, ds: PageDataset, window: int, page_uid: int):
    m = copy.deepcopy(model)
    opt = make_optimizer(m, hp.train)
    pages = ds.layout.pages(window, page_uid, u.pages)
    data = batches(ds.sequences(pages), hp.train.batch_size, u.steps)
    start = snapshot(m)
    train_steps(m, opt, data, hp.train, start_step=window * hp.train.inner_steps)
    if u.compressor is None:
        u.compressor = Compressor(hp.compression)
    return u.compressor.compress(pseudo_gradient(start, m))


def sign_upload(u: Uploader, delta, hp: HParams, ds: PageDataset, window: int) -> bytes:
    return encode_upload(
        delta,
        window=window,
        uid=u.uid,
        hparams_hash=hparams_hash(hp),
        config=hp.compression,
        key=u.key,
        pages=ds.layout.pages(window, u.uid, u.pages),
        steps=u.steps,
    )


def forge_signature(blob: bytes, other_key) -> bytes:
    """Replace the envelope's signature with one made by ``other_key`` over the same header."""
    n = struct.unpack("<Q", blob[:8])[0]
    head = json.loads(blob[8 : 8 + n])
    meta = head["__metadata__"]
    meta["signature"] = sign(other_key, meta["header"].encode("ascii"))
    new = json.dumps(head, separators=(",", ":")).encode()
    new += b" " * (-len(new) % 8)
    return struct.pack("<Q", len(new)) + new + blob[8 + n :]


def nan_codebook(delta):
    name = sorted(delta.tensors)[0]
    t = delta.tensors[name]
    bad = type(t)(t.shape, t.indices, t.codes, torch.full_like(t.codebook, float("nan")))
    return type(delta)({**delta.tensors, name: bad})


class Subnet:
    """Dev chain + local S3 + validators + uploaders, driven window by window."""

    def __init__(self, chain, s3, tmp: Path, hp: HParams, dataset: Path):
        self.chain, self.s3, self.tmp, self.hp = chain, s3, tmp, hp
        self.ds = PageDataset(TokenStream(dataset), hp)
        self.dataset_path = dataset
        self.uploaders: list[Uploader] = []
        self.validators: dict[str, Validator] = {}
        self.vkeys: dict[str, object] = {}
        self.alice = dev_keypair(ALICE)
        self.clients: list[StorageClient] = []
        self.tag = uuid.uuid4().hex[:8]

    def bucket(self, name: str):
        """A bucket of this subnet only: an in-process S3 keeps its buckets across tests, and
        a validator must not find an earlier test's checkpoints."""
        return self.s3.bucket(f"{self.tag}-{name.lower().replace('_', '-')}")

    async def join(self, name: str, stake: float = 0.0) -> tuple[object, int, StorageClient]:
        key = dev_keypair(f"{ALICE}//{name}")
        c = await self.chain.client(key, self.alice)
        uid = await c.register()
        if stake:
            await c.add_stake(stake)
        cfg = self.bucket(name)
        client = StorageClient(cfg)
        self.clients.append(client)
        await client.create_bucket()
        await c.commit(encode_commitment(cfg))
        return key, uid, client

    async def add_uploader(self, name: str, kind: str, **kw) -> Uploader:
        key, uid, client = await self.join(name)
        u = Uploader(name, kind, key, uid=uid, client=client, **kw)
        self.uploaders.append(u)
        return u

    async def add_validator_key(self, name: str, stake: float) -> None:
        key, _, _ = await self.join(name, stake)
        self.vkeys[name] = key

    async def start_validator(self, name: str, cfg: ValidatorConfig | None = None) -> Validator:
        key = self.vkeys[name]
        chain = await self.chain.client(key)
        state_dir = self.tmp / f"state-{name}"
        if not (state_dir / SECRET_FILE).exists():  # fixed samples: reproducible decisions
            write_secret(state_dir / SECRET_FILE, hashlib.sha256(name.encode()).hexdigest())
        v = await prepare_validator(
            chain=chain,
            key=key,
            storage=NodeStorageConfig(write=self.bucket(name)),
            hp=self.hp,
            dataset=self.ds,
            cfg=cfg or validator_config(),
            state_dir=state_dir,
            allow_private=True,
        )
        self.validators[name] = v
        return v

    async def wait_permits(self) -> None:
        for _ in range(200):
            mg = await (await self.chain.client(self.alice)).metagraph()
            permitted = {n.hotkey for n in mg.neurons if n.validator_permit}
            if all(k.ss58_address in permitted for k in self.vkeys.values()):
                return
            await asyncio.sleep(0.2)
        raise TimeoutError("validators never got permits")

    async def put(self, u: Uploader, window: int, blob: bytes) -> None:
        """Store ``blob`` sealed; its key goes out after the cut-off (``after_cutoff``)."""
        (name, sealed), reveal = stored_objects(blob, window=window, hotkey=u.hotkey)
        await u.client.put_bytes(name, sealed)
        u.history[window] = blob
        u.reveals[window] = reveal

    async def upload_window(self, window: int, model) -> None:
        """Every uploader's behaviour for ``window`` (the late one uploads in ``late_uploads``)."""
        hp, ds = self.hp, self.ds
        by_kind = {u.kind: u for u in self.uploaders}
        for u in self.uploaders:
            if u.kind == "honest":
                await self.put(
                    u,
                    window,
                    sign_upload(u, train_delta(u, model, hp, ds, window, u.uid), hp, ds, window),
                )
            elif u.kind == "wrong_pages":
                delta = train_delta(u, model, hp, ds, window, u.uid + 1000)
                await self.put(u, window, sign_upload(u, delta, hp, ds, window))
            elif u.kind == "noise":
                noise = {n: torch.randn(s) * 0.05 for n, s in shapes_of(model).items()}
                delta = Compressor(hp.compression).compress(noise)
                await self.put(u, window, sign_upload(u, delta, hp, ds, window))
            elif u.kind == "zero":
                zero = {n: torch.zeros(s) for n, s in shapes_of(model).items()}
                delta = Compressor(hp.compression).compress(zero)
                await self.put(u, window, sign_upload(u, delta, hp, ds, window))
            elif u.kind == "nan":
                delta = nan_codebook(train_delta(u, model, hp, ds, window, u.uid))
                await self.put(u, window, sign_upload(u, delta, hp, ds, window))
            elif u.kind == "forged":
                blob = sign_upload(u, train_delta(u, model, hp, ds, window, u.uid), hp, ds, window)
                await self.put(u, window, forge_signature(blob, self.alice))
            elif u.kind == "oversized":
                cap = upload_size_cap(shapes_of(model), hp.compression)
                await self.put(u, window, b"\0" * (cap + 1))
            elif u.kind == "replayer":
                victim = by_kind["honest"]
                older = [w for w in victim.history if w < window]
                if older:
                    old = decode_upload(
                        victim.history[max(older)],
                        max_bytes=1 << 30,
                        expected={},
                        param_shapes=shapes_of(model),
                        config=hp.compression,
                    )
                    await self.put(u, window, sign_upload(u, old.delta, hp, ds, window))
        copier = by_kind.get("copier")
        if copier is not None:  # as if the victim's seal had leaked: the copy defences' case
            victim = self.uploaders[0]
            await asyncio.sleep(1.1)  # LastModified has one-second resolution
            theirs = victim.history[window]
            up = decode_upload(
                theirs,
                max_bytes=1 << 30,
                expected={},
                param_shapes=shapes_of(model),
                config=hp.compression,
            )
            await self.put(copier, window, sign_upload(copier, up.delta, hp, ds, window))

    async def late_uploads(self, window: int, model) -> None:
        late = [u for u in self.uploaders if u.kind == "late"]
        if not late:
            return
        blobs = [  # trained in the upload window: only the put is late
            (
                u,
                sign_upload(
                    u,
                    train_delta(u, model, self.hp, self.ds, window, u.uid),
                    self.hp,
                    self.ds,
                    window,
                ),
            )
            for u in late
        ]
        cutoff = WindowClock(self.hp.window).upload_cutoff(window)
        c = await self.chain.client(self.alice)
        await c.wait_for_block(cutoff, timeout=60)
        ts = await c.block_timestamp(cutoff)
        await asyncio.sleep(max(0.0, ts + 2.2 - time.time()))  # LastModified has whole seconds
        for u, blob in blobs:
            await self.put(u, window, blob)

    async def next_window(self) -> int:
        c = await self.chain.client(self.alice)
        clock = WindowClock(self.hp.window)
        w = clock.window_of(await c.block()) + 1
        await c.wait_for_block(clock.start(w), timeout=60)
        return w

    async def after_cutoff(self, window: int) -> None:
        """Wait for the reveal start of ``window``, then publish every uploader's seal key."""
        c = await self.chain.client(self.alice)
        await c.wait_for_block(WindowClock(self.hp.window).reveal_start(window), timeout=60)
        for u in self.uploaders:
            if window in u.reveals:
                await u.client.put_bytes(*u.reveals.pop(window))

    async def close(self) -> None:
        for v in self.validators.values():
            await v.close()
        for c in self.clients:
            await c.close()


@asynccontextmanager
async def running_subnet(
    tmp: Path, dataset: Path, hp: HParams | None = None, **chain_kw
) -> AsyncIterator[Subnet]:
    """A ``Subnet`` on a fresh dev chain (``chain_kw``: block_time, tempo, ...) and local S3,
    closed (validators, clients, S3) on the way out."""
    s3 = start_local_s3()
    try:
        async with running_devchain(tmp, **chain_kw) as chain:
            net = Subnet(chain, s3, tmp, hp or small_hparams(), dataset)
            try:
                yield net
            finally:
                await net.close()
    finally:
        s3.stop()
