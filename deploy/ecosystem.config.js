// pm2 process file for a miner and a validator on one machine (or keep the one you run).
//   cp deploy/miner.env.example deploy/miner.env        # fill in the bucket and keys
//   cp deploy/validator.env.example deploy/validator.env
//   cp deploy/dataset.toml.example deploy/dataset.toml   # the owner's dataset bucket, read key
//   cp <the owner's run.toml> deploy/run.toml            # the run's hparams (HPARAMS overrides)
//   NETUID=<n> NETWORK=test DATASET_PREFIX=<prefix> pm2 start deploy/ecosystem.config.js [--only miner]
//   pm2 logs miner        pm2 save && pm2 startup   (restart on boot)
// Run pm2 from the repository root after scripts/setup.sh (the console scripts are in .venv/bin).
// NETUID is required. State goes where the command line puts it by default
// (~/.template/<wallet>/<hotkey>/<role>), so pm2 and a manual start share it.
// Exit status 2 is a configuration error: pm2 does not restart it (fix, then pm2 restart).
const fs = require("fs");
const path = require("path");

const root = path.resolve(__dirname, "..");
if (!process.env.NETUID) {
  throw new Error("set NETUID (the subnet uid), e.g. NETUID=3 pm2 start deploy/ecosystem.config.js");
}
const netuid = process.env.NETUID;
const network = process.env.NETWORK || "test";
// The owner's hparams file: the larger presets by name pin no tokenizer and are refused.
const hparams = process.env.HPARAMS || path.join(__dirname, "run.toml");
const prefix = process.env.DATASET_PREFIX || "v1/datasets/default";

// KEY=VALUE lines of an env file (comments and blanks skipped); missing file = {}.
function envFile(name) {
  const file = path.join(__dirname, name);
  if (!fs.existsSync(file)) return {};
  const out = {};
  for (const line of fs.readFileSync(file, "utf8").split("\n")) {
    const m = line.match(/^\s*([A-Z0-9_]+)\s*=\s*(.*)\s*$/);
    if (m) out[m[1]] = m[2];
  }
  return out;
}

function node(role, wallet, hotkey, port, device) {
  return {
    name: role,
    cwd: root,
    script: path.join(root, ".venv/bin", `seed-${role}`),
    interpreter: path.join(root, ".venv/bin/python"),
    args: [
      "--subtensor.network", network, "--netuid", netuid,
      "--wallet.name", wallet, "--wallet.hotkey", hotkey,
      "--hparams", hparams, "--device", device,
      "--dataset.bucket-config", path.join(__dirname, "dataset.toml"), "--dataset.prefix", prefix,
      "--metrics.port", String(port),
    ].join(" "),
    env: { PYTHONUNBUFFERED: "1", ...envFile(`${role}.env`) },
    autorestart: true,
    stop_exit_codes: [0, 2],  // 2: a configuration error, restarting cannot fix it
    restart_delay: 10000,
    exp_backoff_restart_delay: 10000,
    max_restarts: 20,
    kill_timeout: 60000,      // time to finish the upload and save state on stop
    time: true,
  };
}

module.exports = {
  apps: [
    node("miner", process.env.MINER_WALLET || "miner", process.env.MINER_HOTKEY || "default",
         9101, process.env.MINER_DEVICE || "cuda:0"),
    node("validator", process.env.VALIDATOR_WALLET || "validator",
         process.env.VALIDATOR_HOTKEY || "default", 9102, process.env.VALIDATOR_DEVICE || "cuda:1"),
  ],
};
