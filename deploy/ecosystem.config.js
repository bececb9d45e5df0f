// pm2 process file for a miner and a validator on one machine (or keep the one you run).
//   cp deploy/miner.env.example deploy/miner.env        # fill in the bucket and keys
//   cp deploy/validator.env.example deploy/validator.env
//   NETUID=<n> NETWORK=test pm2 start deploy/ecosystem.config.js [--only miner]
//   pm2 logs miner        pm2 save && pm2 startup   (restart on boot)
// Paths are relative to the repository root (run pm2 from there after scripts/setup.sh).
const fs = require("fs");
const path = require("path");

const root = path.resolve(__dirname, "..");
const netuid = process.env.NETUID || "1";
const network = process.env.NETWORK || "test";
const hparams = process.env.HPARAMS || "1b";

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

function node(role, wallet, port, device) {
  return {
    name: role,
    cwd: root,
    script: `neurons/${role}.py`,
    interpreter: path.join(root, ".venv/bin/python"),
    args: [
      "--subtensor.network", network, "--netuid", netuid,
      "--wallet.name", wallet, "--wallet.hotkey", "default",
      "--hparams", hparams, "--device", device,
      "--state.dir", path.join(process.env.HOME || "~", ".template", wallet, role),
      "--dataset.bucket-config", path.join(__dirname, "dataset.toml"),
      "--metrics.port", String(port),
    ].join(" "),
    env: { PYTHONUNBUFFERED: "1", ...envFile(`${role}.env`) },
    autorestart: true,
    restart_delay: 10000,   // a start-up error exits 2 with the fix in the log: do not spin
    max_restarts: 20,
    kill_timeout: 60000,    // time to finish the upload and save state on stop
    time: true,
  };
}

module.exports = {
  apps: [
    node("miner", process.env.MINER_WALLET || "miner", 9101, process.env.MINER_DEVICE || "cuda:0"),
    node("validator", process.env.VALIDATOR_WALLET || "validator", 9102,
         process.env.VALIDATOR_DEVICE || "cuda:0"),
  ],
};
