"""Run a local subnet end to end: set up, start the neurons, follow them, tear down, summarise."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from template.chain.devchain.client import DevChainClient
from template.hparams import load_hparams
from template.signing import dev_keypair

from . import setup as S
from .config import GENESIS, NETUID, LocalnetConfig
from .control import STATUS_FILE, serve_requests
from .monitor import Snapshot, Tracker, read_statuses
from .processes import Children, wait_for_http
from .summary import build_summary
from .supervisor import FAILED, UP, RestartPolicy, Supervisor
from .view import event_line

logger = logging.getLogger(__name__)

STOP_TIMEOUT_S = 40.0  # neurons get this long after SIGTERM (the miner's last upload: 30 s)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def setup_network(cfg: LocalnetConfig, children: Children) -> S.Network:
    """Chain + S3 up, dataset ready, wallets registered and staked, buckets and configs written."""
    cfg.run_dir.mkdir(parents=True, exist_ok=True)
    hp = load_hparams(cfg.hparams)  # fail early on a bad --hparams
    chain_port, s3_port = free_port(), free_port()
    chain = S.start_chain(cfg, children, chain_port)
    s3 = S.start_s3(cfg, children, s3_port)
    chain_url, s3_url = f"http://127.0.0.1:{chain_port}", f"http://127.0.0.1:{s3_port}"
    nodes = S.plan_nodes(cfg)
    wallets = {n.name: S.create_wallet(cfg.run_dir / "wallets", n.wallet_name) for n in nodes}
    for n in nodes:
        n.hotkey = wallets[n.name].hotkey.ss58_address
        n.coldkey = wallets[n.name].coldkeypub.ss58_address
    dataset_dir = cfg.dataset_path or S.prepare_dataset(cfg, hp.model.vocab_size)
    wait_for_http(f"{chain_url}/info", chain, timeout=60)
    wait_for_http(f"{s3_url}/moto-api/data.json", s3, timeout=60)
    net = S.Network(str(cfg.run_dir), chain_url, s3_url, NETUID, cfg.block_time, cfg.hparams)
    net.nodes = nodes

    async def on_chain_and_storage() -> None:
        await S.register_nodes(chain_url, nodes, wallets)
        await S.create_buckets(s3_url, [n.bucket for n in nodes])
        if cfg.dataset == "bucket":
            net.dataset_args = await S.publish_dataset(s3_url, Path(dataset_dir), cfg.run_dir)
        else:
            net.dataset_args = ["--dataset.path", str(Path(dataset_dir).resolve())]
        await S.wait_for_permits(chain_url, nodes, cfg.block_time)

    asyncio.run(on_chain_and_storage())
    S.write_storage_configs(s3_url, nodes)
    net.save()
    return net


async def snapshot(client: DevChainClient, net: S.Network) -> Snapshot:
    statuses = read_statuses({n.name: n.state_dir for n in net.nodes})
    mg = await client.metagraph()
    rows = {w["src"] for w in await client.weights()}
    info = await client.subnet_info()
    return Snapshot(
        statuses=statuses,
        block=mg.block,
        incentive={n.uid: n.incentive for n in mg.neurons},
        weights_rows=len(rows),
        last_epoch=int(info.get("last_epoch") or 0),
    )


class Run:
    """One local subnet run; ``await Run(cfg, out).main()`` returns the summary dict."""

    def __init__(
        self, cfg: LocalnetConfig, out: TextIO = sys.stdout, policy: RestartPolicy | None = None
    ):
        self.cfg = cfg
        self.out = out
        self.children = Children()
        self.stop = asyncio.Event()
        self.stop_reason = ""
        self.net: S.Network | None = None
        self.tracker: Tracker | None = None
        self.exited_early: dict[str, int | None] = {}  # children down for good (gave up)
        self.supervisor: Supervisor | None = None
        self.t0 = time.monotonic()
        self.start_blocks: dict[str, list[int]] = {}  # chain block at each (re)start, by node
        self.cfg_policy = policy or RestartPolicy()

    def say(self, line: str) -> None:
        """A line of the live view: to the terminal and to logs/localnet.log."""
        print(line, file=self.out, flush=True)
        try:
            self.cfg.logs_dir.mkdir(parents=True, exist_ok=True)
            with open(self.cfg.logs_dir / "localnet.log", "a") as f:
                f.write(line + "\n")
        except OSError:
            pass

    def request_stop(self, reason: str) -> None:
        if not self.stop.is_set():
            self.stop_reason = reason
            self.stop.set()

    async def main(self) -> dict[str, Any]:
        t0 = self.t0 = time.monotonic()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.request_stop, "interrupted")
        setup_s: float | None = None
        try:
            setup = asyncio.ensure_future(asyncio.to_thread(setup_network, self.cfg, self.children))
            waiter = asyncio.ensure_future(self.stop.wait())
            await asyncio.wait({setup, waiter}, return_when=asyncio.FIRST_COMPLETED)
            if self.stop.is_set():
                self.say("interrupted during set-up; stopping")
                self.children.stop_all(timeout=5)
                await asyncio.gather(setup, return_exceptions=True)
                return self._summary(t0, None, setup_ok=False)
            waiter.cancel()
            self.net = setup.result()
            setup_s = time.monotonic() - t0
            S.start_neurons(self.cfg, self.net, self.children)
            self.supervisor = Supervisor(self.children, self.cfg_policy, self._event)
            self._write_pids()
            self._header(setup_s)
            await self.follow(t0)
        except Exception as e:
            self.request_stop(f"error: {e}")
            logger.error("local subnet failed: %s", e)
        finally:
            await self.teardown()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
        return self._summary(t0, setup_s, setup_ok=self.net is not None)

    def _write_pids(self) -> None:
        """run_dir/pids.json: every child's pid (to check nothing outlives the run)."""
        pids = {c.name: c.pid for c in self.children.items}
        (self.cfg.run_dir / "pids.json").write_text(json.dumps(pids))

    def _header(self, setup_s: float) -> None:
        net = self.net
        assert net is not None
        self.say(
            f"local subnet up in {setup_s:.1f}s: {len(net.miners)} miner(s), "
            f"{len(net.validators)} validator(s), chain {net.chain_url} (block time "
            f"{net.block_time}s, tempo {GENESIS['tempo']}), S3 {net.s3_endpoint}"
        )
        self.say(f"run folder {net.run_dir} (logs/ per process, nodes/<name>/status.json)")
        for n in net.nodes:
            self.say(f"  {n.name:<12} uid {n.uid:>2} {n.hotkey}  log {n.log}")
        self.say("Ctrl-C stops everything.")

    async def follow(self, t0: float) -> None:
        """Poll statuses and the chain, print events, stop on target/crash/timeout/Ctrl-C."""
        net = self.net
        assert net is not None
        miners = {n.name: n.uid for n in net.miners}
        self.tracker = tr = Tracker(
            net.validators[0].name, miners, [v.name for v in net.validators], t0
        )
        interval = min(1.0, max(0.2, 2 * self.cfg.block_time))
        done_block: int | None = None
        reader = DevChainClient(net.chain_url, NETUID, dev_keypair("//Alice"))
        try:
            while not self.stop.is_set():
                if self._supervise():
                    break
                try:
                    snap = await snapshot(reader, net)
                except Exception as e:  # noqa: BLE001 - a slow poll is not fatal
                    logger.warning("poll failed: %s", e)
                    await asyncio.sleep(interval)
                    continue
                for kind, payload in tr.update(snap):
                    self.say(event_line(kind, payload, len(miners)))
                if self.cfg.windows and tr.windows_completed >= self.cfg.windows:
                    # one more epoch so the last weights show up as incentive
                    done_block = done_block if done_block is not None else snap.block
                    epoch_after = snap.last_epoch > done_block
                    if epoch_after or snap.block > done_block + int(GENESIS["tempo"]) + 2:
                        self.request_stop("windows")
                        break
                if self.cfg.timeout and time.monotonic() - t0 > self.cfg.timeout:
                    self.request_stop(f"timeout after {self.cfg.timeout:.0f}s")
                    break
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(interval):
                        await self.stop.wait()
            with contextlib.suppress(Exception):  # the chain's last word before teardown
                for kind, payload in tr.update(await snapshot(reader, net)):
                    self.say(event_line(kind, payload, len(miners)))
        finally:
            await reader.close()

    def _supervise(self) -> bool:
        """Restart crashed children, serve node commands; True when the run must stop."""
        sup = self.supervisor
        assert sup is not None
        for name, h in sup.health.items():
            child = self.children.by_name(name)
            if h.state == UP and child is not None and not child.running():
                self.say(
                    f"{name} exited with code {child.proc.returncode}; last lines of "
                    f"{child.log_path}:\n{child.log_tail(15)}"
                )
        if sup.tick() or serve_requests(self.cfg.run_dir, sup):
            self._write_pids()
        sup.write(self.cfg.run_dir / STATUS_FILE)
        failed = [n for n, h in sup.health.items() if h.state == FAILED]
        if failed:
            self.exited_early = {n: self.children.by_name(n).proc.returncode for n in failed}
            self.request_stop(f"{failed[0]} crashed too often; gave up")
            return True
        return False

    def _event(self, name: str, what: str) -> None:
        block = self.tracker.last.block if self.tracker and self.tracker.last else None
        if "started" in what and block is not None:  # restarted after a crash, or by an operator
            self.start_blocks.setdefault(name, []).append(block)
        self.say(f"[supervisor] {name} {what}")

    async def teardown(self) -> None:
        if self.supervisor is not None:  # before the stop: who crashed and came back, who is down
            for name, h in self.supervisor.health.items():
                if h.crashes or h.state != UP:
                    back = "came back" if h.state == UP else f"is {h.state}"
                    self.say(f"[supervisor] {name}: crashed {len(h.crashes)}x, {back}")
        self.say(f"stopping ({self.stop_reason or 'done'}) ...")
        await asyncio.to_thread(
            self.children.stop_all, STOP_TIMEOUT_S, lambda c: c.name not in ("chain", "s3")
        )

    def _summary(self, t0: float, setup_s: float | None, setup_ok: bool) -> dict[str, Any]:
        codes = {c.name: c.proc.returncode for c in self.children.items}
        if not setup_ok or self.net is None or self.tracker is None:
            return {
                "ok": False,
                "stop_reason": self.stop_reason or "set-up failed",
                "windows_completed": 0,
                "weights_set": 0,
                "incentive": {},
                "loss_start": None,
                "loss_end": None,
                "in_sync": False,
                "uploads_missing": None,
                "seconds_to_first_weights": None,
                "seconds_setup": setup_s,
                "wall_seconds": time.monotonic() - t0,
                "run_dir": str(self.cfg.run_dir),
                "exit_codes": codes,
            }
        summary = build_summary(
            self.tracker,
            self.net,
            codes,
            self.exited_early,
            [c.name for c in self.children.items if c.killed],
            self.stop_reason or "done",
            setup_s,
            time.monotonic() - t0,
            self.cfg.windows,
        )
        if self.supervisor is not None:  # crashed and came back vs down
            report = self.supervisor.report()
            summary["supervision"] = report
            summary["recovered"] = sorted(n for n, h in report.items() if h["recovered"])
            summary["down"] = sorted(n for n, h in report.items() if h["state"] != UP)
        return summary
