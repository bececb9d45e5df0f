"""A scripted leader for miner tests: a validator that follows the protocol's publishing side.

Registers with stake, publishes its bucket commitment, and for every window ``a``, at
``reveal_deadline(a)`` (the miners' seal keys are out): gathers the miners' uploads, keeps those passing the self-checks (time,
signature, decode), selects peers with the bootstrap rule (``WindowApplier.bootstrap``), publishes the peer list, the
aggregate and the fingerprint after applying it, and a checkpoint every ``checkpoint_every``
windows. It records every upload's time verdict so tests can assert uploads were on time.
No scoring: it is a stand-in for the validator, not a validator.
"""

from __future__ import annotations

import asyncio
import logging

from bittensor.sp_core import Keypair

from template.hparams import HParams, hparams_hash
from template.protocol import documents as docs
from template.protocol.aggregation import apply_uploads, decode_peer_uploads
from template.protocol.directory import PeerDirectory
from template.protocol.fingerprint import model_fingerprint
from template.protocol.window_apply import InPlaceModel, WindowApplier
from template.protocol.windows import WindowClock, upload_time_verdict
from template.storage import BucketConfig, StorageClient, StorageError, encode_commitment, keys
from template.training.model import build_model, param_shapes

logger = logging.getLogger("scripted_leader")


class ScriptedLeader:
    def __init__(self, hp: HParams, chain, key, bucket: BucketConfig):
        self.hp, self.chain, self.key, self.bucket_cfg = hp, chain, key, bucket
        self.windows = WindowClock(hp.window)
        self.model = build_model(hp.model)
        self.shapes = param_shapes(self.model)
        self.run_hash = hparams_hash(hp)
        self.bucket = StorageClient(bucket)
        self.directory = PeerDirectory(chain, allow_private=True)
        self.applier = WindowApplier(
            hp,
            self.directory,
            InPlaceModel(self.model, None),
            self.shapes,
            block=chain.block,
            timestamp=chain.block_timestamp,
        )
        self.fingerprints: dict[int, list[float]] = {}
        self.peers: dict[int, list[tuple[int, str]]] = {}
        self.verdicts: dict[tuple[int, str], str] = {}
        self.next_window = 0
        self.paused = False  # tests may pause publishing (leader outage)

    @classmethod
    async def create(cls, handle, hp: HParams, bucket: BucketConfig, stake: float = 100.0):
        """Register a fresh validator on ``handle``'s dev chain (a DevChainHandle or a URL)."""
        from template.chain.devchain.client import DevChainClient
        from template.signing import dev_keypair

        hot = Keypair.create_from_mnemonic(Keypair.generate_mnemonic())
        cold = Keypair.create_from_mnemonic(Keypair.generate_mnemonic())
        url = handle if isinstance(handle, str) else handle.url
        alice = DevChainClient(url, 1, dev_keypair("//Alice"), dev_keypair("//Alice"))
        await alice.transfer(cold.ss58_address, stake + 10)
        await alice.close()
        chain = DevChainClient(url, 1, hot, cold)
        await chain.register()
        await chain.add_stake(stake)
        leader = cls(hp, chain, hot, bucket)
        await leader.bucket.create_bucket()
        await chain.commit(encode_commitment(bucket))
        for _ in range(600):  # a permit arrives with the next epoch
            n = (await chain.metagraph()).by_hotkey(hot.ss58_address)
            if n is not None and n.validator_permit:
                break
            await asyncio.sleep(0.1)
        else:
            raise RuntimeError("scripted leader never got a validator permit")
        return leader

    @property
    def hotkey(self) -> str:
        return self.key.ss58_address

    async def run(self) -> None:
        """Publish every window in order, forever (cancel to stop); retries on any failure."""
        while True:
            a = self.next_window
            try:
                await self.chain.wait_for_block(self.windows.reveal_deadline(a), timeout=30)
                if self.paused:
                    await asyncio.sleep(0.2)
                    continue
                await self.publish_window(a)
                self.next_window = a + 1
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - outages are part of the tests
                logger.info("leader: window %d failed (%s: %s); retrying", a, type(e).__name__, e)
                await asyncio.sleep(0.3)

    async def _record_verdicts(self, a: int, miners, open_ts: float, cutoff_ts: float) -> None:
        """Each upload's time verdict (HEAD), for the tests' on-time assertions."""
        for _, hotkey in miners:
            client = self.directory.client(hotkey)
            try:
                info = await client.head(keys.upload_key(hotkey, a)) if client else None
            except StorageError:
                info = None
            if info is not None:
                verdict = upload_time_verdict(info.last_modified_unix, open_ts, cutoff_ts)
                self.verdicts[(a, hotkey)] = verdict

    async def publish_window(self, a: int) -> None:
        await self.directory.refresh()
        open_ts = await self.chain.block_timestamp(self.windows.start(a))
        cutoff_ts = await self.chain.block_timestamp(self.windows.upload_cutoff(a))
        await self._record_verdicts(a, self.directory.miners(), open_ts, cutoff_ts)
        peers, chosen = await self.applier.bootstrap(a)  # the protocol's rule, as miners run it
        pl = docs.PeerList(a, tuple(peers), (), "bootstrap", self.run_hash)
        await self.bucket.put_bytes(keys.peers_key(a), docs.encode_peer_list(pl, self.key))
        uploads = decode_peer_uploads(chosen, peers, a, self.hp, self.shapes)
        apply_uploads(self.model, uploads, self.hp)
        fp = model_fingerprint(self.model)
        agg = docs.Aggregate(a, tuple(peers), tuple(chosen), self.run_hash)
        await self.bucket.put_bytes(keys.aggregate_key(a), docs.encode_aggregate(agg, self.key))
        doc = docs.Fingerprint(a, tuple(fp), self.run_hash)
        await self.bucket.put_bytes(keys.fingerprint_key(a), docs.encode_fingerprint(doc, self.key))
        if self.windows.is_checkpoint_window(a):
            params = {n: p.detach().clone() for n, p in self.model.named_parameters()}
            ck = docs.Checkpoint(a, tuple(fp), params, self.run_hash)
            key = keys.checkpoint_key(a)
            await self.bucket.put_bytes(key, docs.encode_checkpoint(ck, self.key))
            await self.bucket.put_bytes(
                keys.latest_checkpoint_key(), docs.encode_latest(a, key, self.key)
            )
        self.fingerprints[a], self.peers[a] = fp, peers
        logger.info("leader: window %d published, %d peers", a, len(peers))

    async def close(self) -> None:
        await self.directory.close()
        await self.bucket.close()
        await self.chain.close()
