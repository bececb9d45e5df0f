"""``seed-export-model``: a run's model -> a Hugging Face folder stock ``transformers`` loads.

seed-export-model runs/localnet-<time> --out my-model        # a local subnet run
seed-export-model ~/.template/v/default/validator --out m    # a validator's state folder
seed-export-model checkpoint.safetensors --hparams 1b --tokenizer ./tok --out m

The folder holds config.json, model.safetensors, generation_config.json and the tokenizer files;
then ``AutoModelForCausalLM.from_pretrained("m")`` and ``AutoTokenizer.from_pretrained("m")``.
A run folder names its hparams and tokenizer itself; a leader's checkpoint file (the signed
safetensors object under v3/checkpoints/) or a state folder needs ``--hparams`` unless it is tiny.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from template.commands.usage import refuse

MODEL_FILE = "model.safetensors"


class ExportError(Exception):
    """The input cannot be exported; the message says what to pass instead."""


def find_weights(source: Path) -> tuple[Path, dict]:
    """(safetensors file, what the source says about itself: hparams, dataset folder)."""
    if source.is_file():
        return source, {}
    info: dict = {}
    network = source / "network.json"
    if network.is_file():  # a local subnet run folder: the leading validator's model
        info = json.loads(network.read_text())
        info["dataset"] = source / "dataset"
        states = sorted((source / "nodes").glob("validator-*"))
        source = states[0] if states else source
    if (source / MODEL_FILE).is_file():
        return source / MODEL_FILE, info
    raise ExportError(
        f"{source} holds no {MODEL_FILE}: pass a local subnet run folder, a validator's "
        "--state.dir, or a checkpoint .safetensors file"
    )


def read_tensors(path: Path, hparams_hash: str):
    """The parameters; a signed checkpoint must have been made under the same hparams."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open API
    if "header" in meta:
        header = json.loads(meta["header"])
        if header.get("hparams_hash") not in (None, hparams_hash):
            raise ExportError(
                f"{path} was made under hparams {header['hparams_hash'][:12]}..., not the ones "
                "given: pass the run's --hparams"
            )
    return tensors


def export(source: Path, out: Path, hparams: str | None, tokenizer: str | None) -> Path:
    """Write the Hugging Face folder ``out`` from ``source``; returns ``out``."""
    import torch
    from transformers import GenerationConfig, LlamaForCausalLM

    from template.hparams import hparams_hash, load_hparams
    from template.training.model import llama_config, shapes_of
    from template.training.tokenizer import load_tokenizer

    weights, info = find_weights(source)
    hp = load_hparams(hparams or info.get("hparams") or "tiny")
    tok = load_tokenizer(tokenizer or _dataset_tokenizer(info.get("dataset")) or "byte")
    if tok.name != hp.data.tokenizer:
        raise ExportError(
            f"tokenizer {tok.name} is not the run's data.tokenizer {hp.data.tokenizer}: pass the "
            "owner's tokenizer folder with --tokenizer"
        )
    tensors = read_tensors(weights, hparams_hash(hp))
    shapes = shapes_of(hp.model)
    wrong = [n for n, s in shapes.items() if n not in tensors or tuple(tensors[n].shape) != s]
    if wrong or set(tensors) - set(shapes):
        raise ExportError(
            f"{weights} does not fit hparams {hp.name} (e.g. {(wrong or sorted(tensors))[0]}): "
            "pass the run's --hparams"
        )
    config = llama_config(hp.model)
    config.use_cache = True
    config.eos_token_id = config.pad_token_id = tok.eot_id
    config.bos_token_id = None
    model = LlamaForCausalLM(config)
    model.load_state_dict(tensors, strict=not hp.model.tie_embeddings)
    model.generation_config = GenerationConfig(eos_token_id=tok.eot_id, pad_token_id=tok.eot_id)
    out.mkdir(parents=True, exist_ok=True)
    model.to(torch.float32).save_pretrained(str(out), safe_serialization=True)
    tok.save_pretrained(out, max_length=hp.model.seq_len)
    return out


def _dataset_tokenizer(dataset: Path | None) -> str | None:
    """A run folder's dataset says which tokenizer made it (byte, or a folder beside it)."""
    if dataset is None or not (dataset / "manifest.json").is_file():
        return None
    name = json.loads((dataset / "manifest.json").read_text()).get("tokenizer")
    if name == "byte":
        return "byte"
    folder = dataset / "tokenizer"
    return str(folder) if folder.is_dir() else None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="seed-export-model",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("source", help="A local subnet run folder, a validator state folder or a file.")
    p.add_argument("--out", required=True, help="The Hugging Face folder to write.")
    p.add_argument(
        "--hparams", default=None, help="Preset or TOML (default: the run's, else tiny)."
    )
    p.add_argument(
        "--tokenizer",
        default=None,
        help="byte or a tokenizer folder (default: the one the run's dataset names).",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    source = Path(a.source).expanduser()
    if not source.exists():
        return refuse("export-model", f"{source} does not exist")
    try:
        out = export(source, Path(a.out).expanduser(), a.hparams, a.tokenizer)
    except (ExportError, FileNotFoundError, ValueError) as e:
        return refuse("export-model", e)
    print(f"wrote {out}: AutoModelForCausalLM.from_pretrained({str(out)!r}) loads it")
    return 0


if __name__ == "__main__":
    sys.exit(main())
