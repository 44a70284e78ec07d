"""GGUF files as normal Hugging Face checkpoints: dequantised once through transformers, saved.

transformers reads a GGUF file (with the `gguf` package) and dequantises it to float32, but in
transformers 5 `save_pretrained` of that model fails ("quantized with gguf and is not
serializable"). What works (measured, docs/PLATFORM.md): drop `quantization_config` from the
config, build the same architecture from the config, load the dequantised state dict into it
(every key matches) and save that, with the tokenizer (chat template included) and the
generation config. The result is an ordinary checkpoint every stage can load, train and serve.

`convert_gguf` writes a directory atomically (a temporary sibling renamed into place) with a
`w4s_model.json` record of the source. `cached_gguf_checkpoint` converts a file once per
content key (size + the first and last MiB + mtime) into the cache and reuses it afterwards;
a lock file keeps two processes from converting the same file at once.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from w4s_ray.errors import W4SError

RECORD = "w4s_model.json"
DEFAULT_CACHE = Path.home() / ".cache" / "w4s" / "models"
_CHUNK = 1 << 20


class GGUFError(W4SError):
    """A GGUF file cannot be read or converted."""


def gguf_key(path: Path) -> str:
    """A content key for a GGUF file (cheap: size, mtime, first and last MiB)."""
    st = path.stat()
    h = hashlib.sha256(f"{st.st_size}:{st.st_mtime_ns}".encode())
    with open(path, "rb") as fh:
        h.update(fh.read(_CHUNK))
        if st.st_size > _CHUNK:
            fh.seek(max(_CHUNK, st.st_size - _CHUNK))
            h.update(fh.read(_CHUNK))
    return h.hexdigest()


def read_record(model_dir: Path) -> dict | None:
    try:
        return json.loads((model_dir / RECORD).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def _check_gguf_support() -> None:
    import importlib.util

    if importlib.util.find_spec("gguf") is None:
        raise GGUFError(
            "reading a .gguf file needs the `gguf` package: pip install 'w4s-ray[models]' "
            "(make install adds it)"
        )


def convert_gguf(gguf: Path, out: Path, *, extra: dict | None = None) -> dict:
    """Dequantise `gguf` into a float32 HF checkpoint at `out` (replaced atomically)."""
    _check_gguf_support()
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = gguf.expanduser().resolve()
    if not gguf.is_file():
        raise GGUFError(f"GGUF file not found: {gguf}")
    t0 = time.monotonic()
    try:
        tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        loaded = AutoModelForCausalLM.from_pretrained(
            str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
        )
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise GGUFError(f"cannot read {gguf} as a model: {str(exc).splitlines()[0][:200]}") from None
    config = loaded.config
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    # Same architecture without the GGUF quantizer attached: this one can be saved.
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(loaded.state_dict(), strict=False)
    if unexpected or [k for k in missing if "lm_head" not in k]:
        raise GGUFError(f"{gguf}: weights do not match the architecture "
                        f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
    model.tie_weights()
    model.generation_config = loaded.generation_config
    del loaded
    if not getattr(tok, "chat_template", None):
        raise GGUFError(f"{gguf}: the file carries no chat template (tokenizer.chat_template)")
    out = out.expanduser()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes 0700; the checkpoint is an ordinary directory
    try:
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        record = {
            "source": "gguf", "gguf": str(gguf), "key": gguf_key(gguf),
            "architecture": config.model_type,
            "parameters": sum(p.numel() for p in model.parameters()),
            "dtype": "float32", "seconds": round(time.monotonic() - t0, 1),
            "converted_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **(extra or {}),
        }
        (tmp / RECORD).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return record


def cached_gguf_checkpoint(gguf: Path, cache_dir: str | Path | None = None) -> Path:
    """The converted checkpoint of `gguf`, converting it on first use."""
    gguf = gguf.expanduser().resolve()
    key = gguf_key(gguf)
    root = Path(cache_dir).expanduser() if cache_dir else DEFAULT_CACHE
    out = root / "gguf" / f"{gguf.stem}-{key[:12]}"
    rec = read_record(out)
    if rec and rec.get("key") == key and (out / "config.json").is_file():
        return out
    root.joinpath("gguf").mkdir(parents=True, exist_ok=True)
    with open(root / "gguf" / f".{out.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be converting the same file
        rec = read_record(out)
        if not (rec and rec.get("key") == key and (out / "config.json").is_file()):
            convert_gguf(gguf, out)
    return out
