"""Config checking: fill in schema defaults, validate, and explain the first error in one line.

Runs when Snakemake parses the workflow, so it imports neither torch nor pandas. Method variants
are validated against the schema of their own kind (``$defs/<kind>``), which keeps messages
precise: ``methods.gptq_w4.bits: 9 is greater than the maximum of 8``.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import yaml

from quantbench.core.sourcecheck import source_problem

RESERVED_METHOD = "fp32"
INT8_KINDS = ("ptq_dynamic", "ptq_static", "qat")
WEIGHT_ONLY_KINDS = ("rtn", "gptq")
# Kinds whose quantize step runs on CUDA when the job has a GPU (GPTQ's per-layer solves); every
# other kind quantizes on the CPU, and a cluster run asks a GPU for none of them.
CUDA_KINDS = ("gptq",)
# The int4 kernel's limits (quantbench.quant.weightonly.int4: MAX_BITS, KERNEL_GROUPS[0]), repeated
# here so that config checking needs no torch; tests/core/test_config.py checks that the two agree.
INT4_MAX_BITS = 4
INT4_GROUP_MULTIPLE = 32


class ConfigError(ValueError):
    """A config value the workflow cannot run with; the message names the key and the fix."""


# libyaml's parser when PyYAML was built with it: the schema is read whenever Snakemake parses the
# workflow (on a cluster twice per job), and the C loader reads it about ten times faster.
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_schema(path: str | os.PathLike[str]) -> dict[str, Any]:
    return yaml.load(Path(path).read_text(encoding="utf-8"), Loader=_SAFE_LOADER)


def fill_defaults(instance: Any, schema: dict[str, Any]) -> Any:
    """Return a copy of ``instance`` with every missing property set to the schema default."""
    if not isinstance(instance, dict) or schema.get("type") not in ("object", None):
        return instance
    out = dict(instance)
    for key, sub in schema.get("properties", {}).items():
        if key not in out and "default" in sub:
            out[key] = copy.deepcopy(sub["default"])
        if key in out:
            out[key] = fill_defaults(out[key], sub)
    return out


def _where(path: list[Any]) -> str:
    return ".".join(str(p) for p in path) or "(top level)"


def _explain(error: Any, prefix: str) -> str:
    """One line for a jsonschema error: where, what, and what is allowed."""
    where = _where([p for p in prefix.split(".") if p] + list(error.absolute_path))
    sub = error.schema if isinstance(error.schema, dict) else {}
    if error.validator == "additionalProperties":
        allowed = ", ".join(sorted(sub.get("properties", {}))) or "none"
        return f"{where}: {error.message}; allowed keys: {allowed}"
    if error.validator == "enum":
        allowed = ", ".join("null" if v is None else str(v) for v in error.validator_value)
        return f"{where}: {error.instance!r} is not allowed; choose one of: {allowed}"
    if "propertyNames" in error.absolute_schema_path and where.startswith("models"):
        return (
            f"{where}: model name {error.instance!r} is not usable: names start with a letter "
            "and use only letters, digits and '_'"
        )
    if "propertyNames" in error.absolute_schema_path:
        return (
            f"{where}: method name {error.instance!r} is not usable: names start with a letter, "
            f"use only letters, digits and '_', and '{RESERVED_METHOD}' is reserved"
        )
    if error.validator == "minProperties" and where == "methods":
        return (
            "methods: no method variants; list at least one, e.g. ptq_dynamic: {kind: ptq_dynamic}"
        )
    if error.validator == "minProperties" and where == "models":
        return "models: no model variants; list at least one, e.g. mlp: {arch: mlp}"
    hint = f" ({sub['description']})" if sub.get("description") else ""
    return f"{where}: {error.message}{hint}"


def _validate(instance: Any, schema: dict[str, Any], prefix: str = "") -> None:
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
    if errors:
        best = jsonschema.exceptions.best_match(errors)
        raise ConfigError(_explain(best, prefix))


def resolve_methods(methods: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """Validate each variant against its kind's schema and fill that kind's defaults."""
    out = {}
    for name, variant in methods.items():
        kind_schema = {**schema["$defs"][variant["kind"]], "$defs": schema["$defs"]}
        _validate(variant, kind_schema, prefix=f"methods.{name}")
        out[name] = fill_defaults(variant, kind_schema)
    return out


def resolve_models(models: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """Validate each model variant against its architecture's schema and fill its defaults."""
    out = {}
    for name, variant in models.items():
        arch_schema = {**schema["$defs"][f"model_{variant['arch']}"], "$defs": schema["$defs"]}
        _validate(variant, arch_schema, prefix=f"models.{name}")
        out[name] = fill_defaults(variant, arch_schema)
        problem = model_problem(out[name])
        if problem:
            raise ConfigError(f"models.{name}.{problem}")
    return out


def model_problem(model: dict[str, Any]) -> str | None:
    """What the schema cannot say about one model's parameters (``key: why; fix``), or None."""
    arch = model["arch"]
    if arch == "cnn1d" and model["kernel_size"] % 2 == 0:
        k = model["kernel_size"]
        return (
            f"kernel_size: {k} is even; use an odd size such as {k + 1} (padding keeps the length)"
        )
    if arch == "transformer" and model["d_model"] % model["heads"]:
        return (
            f"heads: {model['heads']} does not divide d_model {model['d_model']}; "
            "choose heads that divide d_model"
        )
    if arch == "custom":
        return source_problem(model["path"], model["factory"], model["params"])
    return None


def matrix_widths(model: dict[str, Any]) -> list[int] | None:
    """Input widths of a built-in model's matrix layers after the first, known without data.

    Each Linear and Conv1d (as a matrix of ``in_channels · kernel_size`` columns) in the order
    the forward pass calls them; the first layer is left out, since it reads the model's input
    and a wider group is one group there (see ``weightonly.check_fits``). Widths that depend on
    the number of features (cnn1d's layer after the flattening) are left out too: the quantize
    job checks them before it starts. None for a custom model (only its job can tell).
    """
    arch = model["arch"]
    if arch == "mlp":
        return list(model["hidden"])
    if arch == "cnn1d":
        widths = [c * model["kernel_size"] for c in model["channels"][:-1]]
        return widths + ([model["hidden"]] if model["hidden"] else [])
    if arch == "transformer":
        d, ffn = model["d_model"], model["ffn"]
        per_layer = [d, d, ffn]  # proj (d), ff1 (d), ff2 (ffn); qkv (d) opens each layer
        return [*per_layer, *([d, *per_layer] * (model["layers"] - 1)), d]  # head (d)
    return None


def check_group_sizes(cfg: dict[str, Any]) -> None:
    """A weight group must fit inside the layers it applies to, in every model.

    Groups run along a layer's inputs and the last one may be shorter, so any size up to the
    width fits. The first layer's width depends on the data; a larger group there is one group.
    What only the data can tell (a custom model's layers, cnn1d's layer after the flattening) is
    checked by the quantize job before it starts, with the same rule.
    """
    for model, spec in cfg["models"].items():
        widths = matrix_widths(spec)
        if not widths:
            continue
        for name, variant in cfg["methods"].items():
            group = variant.get("group_size", -1)
            too_wide = [w for w in widths if group > w]
            if too_wide:
                raise ConfigError(
                    f"methods.{name}.group_size: {group} is wider than the layer width "
                    f"{too_wide[0]} of model {model} ({spec['arch']}); use at most {min(widths)} "
                    "or -1 (one group per output channel)"
                )


def check_executions(cfg: dict[str, Any]) -> None:
    """An execution path the variant's codes cannot take stops the run before any job."""
    for name, variant in cfg["methods"].items():
        if variant["kind"] not in WEIGHT_ONLY_KINDS:
            continue
        path, bits, group = variant["execution"], variant["bits"], variant["group_size"]
        where = f"methods.{name}.execution"
        if path == "int8" and group != -1:
            raise ConfigError(
                f"{where}: int8 needs group_size -1 (one scale per output channel), got "
                f"{group}; set group_size: -1, or execution: dequantized or int4"
            )
        if path != "int4":
            continue
        if bits > INT4_MAX_BITS:
            raise ConfigError(
                f"{where}: the int4 kernel holds codes of at most {INT4_MAX_BITS} bits, got "
                f"bits: {bits}; use execution: dequantized, or execution: int8 with "
                "group_size: -1"
            )
        if group != -1 and group % INT4_GROUP_MULTIPLE:
            raise ConfigError(
                f"{where}: the int4 kernel needs group_size -1 or a multiple of "
                f"{INT4_GROUP_MULTIPLE}, got {group}; change group_size, or use execution: "
                "dequantized (any group size)"
            )


def rounds_problem(evaluate: dict[str, Any]) -> str | None:
    """Why the timing totals cannot be spread over ``evaluate.rounds``, or None."""
    rounds = evaluate.get("rounds", 100)
    for name in ("latency_samples", "throughput_repeats"):
        if name in evaluate and evaluate[name] < rounds:
            return (
                f"evaluate.{name} ({evaluate[name]}) is below evaluate.rounds ({rounds}): "
                f"every round needs one; raise {name} or lower rounds"
            )
    return None


VARIANT_SECTIONS = ("methods", "models")


def apply_config_files(config: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """The config after the files given with ``--configfile`` (and ``--config``), ``given``.

    Snakemake has already merged them into config.yaml key by key, nested mappings included: a
    named variant changes only the keys a file gives and a new name adds a variant. Here a
    variant set to null is removed, and a section named in the files' ``replace:`` list is the
    files' own list alone, without config.yaml's variants.
    """
    out = dict(config)
    replace = given.get("replace")
    replace = replace if isinstance(replace, list) else []  # the schema reports a bad value
    for section in VARIANT_SECTIONS:
        variants = out.get(section)
        if section in replace:
            variants = given.get(section)
            if not isinstance(variants, dict):
                raise ConfigError(
                    f"replace: names {section} but no config file lists {section}; "
                    f"add a {section}: list to the file, or take {section} out of replace"
                )
        if isinstance(variants, dict):
            out[section] = {name: v for name, v in variants.items() if v is not None}
    return out


def canonical(value: Any) -> Any:
    """Mappings with sorted keys, recursively.

    Snakemake compares a rule's params by their text, so the same settings written in another
    key order would otherwise rerun jobs for nothing.
    """
    if isinstance(value, dict):
        return {k: canonical(value[k]) for k in sorted(value, key=str)}
    if isinstance(value, list):
        return [canonical(v) for v in value]
    return value


def resolve_config(config: dict[str, Any], schema_path: str | os.PathLike[str]) -> dict[str, Any]:
    """The validated config with every default filled in; ConfigError on the first problem."""
    if not isinstance(config, dict) or not config:
        raise ConfigError("the config is empty; start from the repository's config.yaml")
    if "model" in config:
        raise ConfigError(
            "model: the single model block is gone; move it under models, e.g. "
            "models: {mlp: {arch: mlp, hidden: [256, 256], dropout: 0.1}}"
        )
    schema = load_schema(schema_path)
    _validate(config, schema)
    resolved = fill_defaults(config, schema)
    resolved["models"] = resolve_models(resolved["models"], schema)
    resolved["methods"] = resolve_methods(resolved["methods"], schema)
    if resolved["data"]["source"] == "csv" and not resolved["data"]["csv"]["path"]:
        raise ConfigError("data.csv.path: data.source is csv but no path is set; set data.csv.path")
    check_group_sizes(resolved)
    check_executions(resolved)
    problem = rounds_problem(resolved["evaluate"])
    if problem:
        raise ConfigError(problem)
    if "onnxruntime" in resolved["runtimes"] and not resolved["deploy"]["export"]:
        raise ConfigError(
            "runtimes: onnxruntime times the exported artifacts, but deploy.export is false; "
            "set deploy.export: true, or runtimes: [torch]"
        )
    return canonical(resolved)


def replicate_seeds(cfg: dict[str, Any]) -> list[int]:
    """The seed of each replicate: ``replicates: n`` counts up from ``seed``; a list is taken as is.

    A replicate's seed never depends on how many there are, so adding one keeps the others.
    """
    reps = cfg["replicates"]
    if isinstance(reps, list):
        return [int(s) for s in reps]
    return [int(cfg["seed"]) + i for i in range(int(reps))]


def replicate_name(seed: int) -> str:
    """The ``{rep}`` wildcard of a replicate: ``seed42``."""
    return f"seed{seed}"


def replicate_seed(name: str) -> int:
    """Inverse of :func:`replicate_name`."""
    if not name.startswith("seed") or not name[4:].isdigit():
        raise ValueError(f"replicate name {name!r} is not of the form seed<N>")
    return int(name[4:])


def model_file(cfg: dict[str, Any], name: str) -> str | None:
    """The Python file a custom model is built from (an input of its training), else None."""
    spec = cfg["models"][name]
    return spec["path"] if spec["arch"] == "custom" else None


def resolved_execution(execution: str, group_size: int) -> str:
    """A weight-only variant's ``execution`` with ``auto`` resolved: int8 for per-channel codes
    (``group_size: -1``), else dequantized."""
    if execution != "auto":
        return execution
    return "int8" if group_size == -1 else "dequantized"


def uses_int8_engine(variant: dict[str, Any]) -> bool:
    """Whether a (resolved) variant runs on the int8 engine's kernels: the int8 kinds, and
    weight-only codes on the int8 path (torch's dynamic int8 Linear)."""
    if variant["kind"] in INT8_KINDS:
        return True
    if variant["kind"] in WEIGHT_ONLY_KINDS:
        return resolved_execution(variant["execution"], variant["group_size"]) == "int8"
    return False


def quantize_device(cfg: dict[str, Any], name: str) -> str:
    """The device a method's quantize job asks for: train.device for the CUDA kinds, else cpu."""
    return cfg["train"]["device"] if cfg["methods"][name]["kind"] in CUDA_KINDS else "cpu"


def uses_gpu(cfg: dict[str, Any], rule: str, method: str | None = None) -> bool:
    """Whether a job of ``rule`` (for ``method``) may run on CUDA: FP32 training and the quantize
    jobs of the CUDA kinds, unless train.device is cpu. No other job ever does."""
    if cfg["train"]["device"] == "cpu":
        return False
    if rule == "train_fp32":
        return True
    return rule == "quantize" and method is not None and quantize_device(cfg, method) != "cpu"


def method_params(cfg: dict[str, Any], name: str, engine: str) -> dict[str, Any]:
    """What the quantize job of one variant receives: its own parameters, plus the run's int8
    engine for a variant that runs on int8 engine kernels."""
    variant = dict(cfg["methods"][name])
    if uses_int8_engine(variant):
        variant["engine"] = engine
    return variant
