"""`hecvl evaluate`: zero-shot phase recognition of one model on target dataset splits.

    hecvl evaluate --params P --weights MODEL_DIR --dataset D [D ...] [--setting SPACE-PROMPTS ...] --out T
    hecvl evaluate --params P --untrained ...      (or --weights MODEL_DIR --linear-probe ...)
    hecvl evaluate --params P --format surgvlp --weights FILE.pth --bert-dir DIR ...
    hecvl evaluate --params P --format surgclip|surglime --weights FILE.pth --bert-dir DIR ...  (windows)
    hecvl evaluate --params P --format hf-clip --weights HF_DIR ...   (a local CLIP or SigLIP folder)
    hecvl evaluate --params P --weights MODEL_DIR --dataset-dir DIR --out OUT   (your own dataset folder)
    hecvl evaluate --protocol surgclip ...       (a named protocol: `hecvl protocols` lists them)

One process can run many evaluations of the same model: several `--dataset`s and `--setting`s, with
`--out` a template holding `{dataset}`, `{space}` and `{prompts}` (how the workflow evaluates a model:
starting Python, torch and MLflow for every table cell cost ten times the evaluation itself). A
`--dataset-dir` is a folder in the generic format (`hecvl dataset check DIR`), evaluated as a target
named after the folder without editing params.yaml. `--format` names a model family of the registry
(formats.py); the command builds its source and the protocol once, and the engine
(`hecvl.evaluation.evaluate`) scores them.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from hecvl.config import SPACES, STYLES, EvalSettings, Params, load_params
from hecvl.errors import HecvlError
from hecvl.evaluation.evaluate import Evaluation, Options, evaluate_many
from hecvl.evaluation.formats import ALIASES, FAMILIES, family
from hecvl.evaluation.protocols import ResolvedProtocol, protocol_label, resolve_protocol
from hecvl.evaluation.sources import ModelSource, SourceFamily, SourceRequest

OPTIONS = {"bert_dir": "--bert-dir", "name": "--name"}  # options only some families take


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", type=Path, default=Path("params.yaml"), help="the study's params.yaml")
    parser.add_argument("--variant", help="variant of params.yaml whose settings apply (default: main)")
    who = parser.add_mutually_exclusive_group()
    who.add_argument(
        "--weights",
        type=Path,
        help="the model: a folder saved by `hecvl pretrain` (--format ours), the authors' released .pth file "
        "(surgvlp, surgclip, surglime) or a Hugging Face folder (hf-clip)",
    )
    who.add_argument(
        "--untrained", action="store_true", help="a freshly initialised model (seeded): chance level"
    )
    parser.add_argument(
        "--format",
        choices=[*FAMILIES, *ALIASES],
        help="the model's family (default: ours, or untrained with --untrained): "
        + "; ".join(f"{name}: {fam.help}" for name, fam in FAMILIES.items())
        + "; " + ", ".join(f"{old} (deprecated): {new}" for old, new in ALIASES.items()),
    )
    parser.add_argument(
        "--bert-dir",
        type=Path,
        help="--format surgvlp: local Bio_ClinicalBERT folder with vocab.txt (default: released.bert_dir); "
        "surgclip: bert-base-uncased folder; surglime: PubMedBERT folder",
    )
    parser.add_argument(
        "--name",
        help="other groups' models: short name of the model in run names (default: the file or folder name, "
        "lower-cased)",
    )
    parser.add_argument(
        "--seed", type=int, help="seed of the untrained model and the probe (default: params seed)"
    )
    parser.add_argument("--dataset", nargs="+", default=[], help="target dataset name(s) under data.targets")
    parser.add_argument(
        "--dataset-dir",
        nargs="+",
        type=Path,
        default=[],
        help="dataset folder(s) in the generic format, each a target named after its folder "
        "(instead of, or beside, --dataset)",
    )
    parser.add_argument(
        "--protocol",
        help="named evaluation protocol (`hecvl protocols` lists them; default: eval.protocol, i.e. hecvl)",
    )
    parser.add_argument(
        "--split",
        help="split(s) to evaluate, several joined by + (default: the protocol's; hecvl: eval.split = test)",
    )
    parser.add_argument(
        "--prompt-file",
        type=Path,
        help="your prompt file (layout of src/hecvl/evaluation/prompts/*.yaml): e.g. the prompts a "
        "protocol's authors scored with (default: eval.prompt_file, else the shipped file)",
    )
    parser.add_argument(
        "--out",
        required=True,
        help="output folder; with several datasets or settings a template with {dataset}, {space} "
        "and {prompts} (e.g. results/eval/hecvl/seed0/{dataset}/{space}-{prompts})",
    )
    parser.add_argument(
        "--space",
        choices=SPACES,
        help="embedding space that answers (default: eval.space)",
    )
    parser.add_argument("--prompts", choices=STYLES, help="prompt style (default: eval.prompts)")
    parser.add_argument(
        "--setting",
        action="append",
        metavar="SPACE-PROMPTS",
        help="one (space, prompts) pair to evaluate, e.g. clip-class_name; repeat for several "
        "(instead of --space/--prompts)",
    )
    parser.add_argument(
        "--linear-probe", action="store_true", help="logistic regression on frozen embeddings (train split)"
    )
    parser.add_argument("--device", help="auto | cpu | cuda (default: eval.device)")
    parser.add_argument(
        "--sensitivity",
        action="store_true",
        help="score the model under every named protocol and each of their choices alone, into --out "
        "(a folder); `snakemake protocol_sensitivity` runs it for the study's models",
    )


def run(args: argparse.Namespace) -> int:
    fam = chosen_family(args)
    params = load_params(args.params).variant(args.variant)
    if args.prompt_file is not None:
        params = params.updated({"eval": {"prompt_file": str(args.prompt_file)}})
    params, names = add_dataset_dirs(params, args.dataset_dir)
    datasets = list(dict.fromkeys([*args.dataset, *names]))
    if not datasets:
        raise HecvlError("nothing to evaluate: give --dataset NAME or --dataset-dir DIR")
    source = fam.build(SourceRequest(params, args.weights, args.bert_dir, args.name, args.seed, args.variant))
    protocol = resolve_protocol(params, args.protocol, args.split, source.window)
    seed = protocol.params.seed if args.seed is None else args.seed
    if args.sensitivity:
        return run_sweep(source, protocol, datasets, seed, args)
    plan = evaluation_plan(protocol.params.eval, datasets, source, args)
    results = evaluate_many(source, protocol, plan, Options(seed, args.linear_probe))
    for item, metrics in zip(plan, results, strict=True):
        print(
            f"{metrics['run']['method']} {item.dataset}/{metrics['run']['split']} "
            f"[{protocol_label(metrics['run']['protocol'])}] ({metrics['run']['space']}"
            f"{', ' + metrics['run']['prompts'] if 'prompts' in metrics['run'] else ''}): "
            f"{metrics['num_videos']} videos, accuracy {metrics['accuracy_mean']:.2f} "
            f"± {metrics['accuracy_std']:.2f}, F1 {metrics['f1_mean']:.2f} ± {metrics['f1_std']:.2f}; "
            f"frame-pooled accuracy {metrics['accuracy_pooled']:.2f}, F1 {metrics['f1_pooled']:.2f} (%) "
            f"-> {item.out}"
        )
    return 0


def chosen_family(args: argparse.Namespace) -> SourceFamily:
    """The family `--format` names; options that mean nothing for it are refused before anything is read."""
    fam = family(args.format or ("untrained" if args.untrained else "ours"))
    if args.untrained and fam.name != "untrained":
        raise HecvlError(f"--untrained builds our model; it cannot be combined with --format {fam.name}")
    if fam.needs_weights and args.weights is None:
        raise HecvlError(f"--format {fam.name} needs --weights: {fam.help}")
    if args.space is not None and args.space not in fam.spaces:
        raise HecvlError(f"--space does not apply to --format {fam.name}: its models have one embedding "
                         f"space for every level of text (recorded as {', '.join(fam.spaces)})")
    if args.linear_probe and not fam.linear_probe:
        raise HecvlError(f"--linear-probe is not offered for --format {fam.name}")
    for option, flag in OPTIONS.items():
        if getattr(args, option) is not None and option not in fam.options:
            takers = [name for name, f in FAMILIES.items() if option in f.options]
            raise HecvlError(f"{flag} applies to --format {', '.join(takers)} only, not {fam.name}")
    return fam


def run_sweep(
    source: ModelSource, protocol: ResolvedProtocol, datasets: list[str], seed: int, args: argparse.Namespace
) -> int:
    """`--sensitivity`: the model under every named protocol and each protocol choice (sensitivity.py)."""
    from hecvl.evaluation.sensitivity import SWEEP_FILE, run_sensitivity

    fixed = {"--protocol": args.protocol, "--setting": args.setting, "--space": args.space,
             "--prompts": args.prompts, "--split": args.split, "--linear-probe": args.linear_probe or None}
    given = [k for k, v in fixed.items() if v is not None]
    if given:
        raise HecvlError(f"--sensitivity sweeps the protocols' own settings: drop {', '.join(given)}")
    if "{" in args.out:
        raise HecvlError("--sensitivity writes a folder per protocol under --out: a folder, not a template")
    table = run_sensitivity(source, protocol.params, datasets, Path(args.out), seed)
    print(f"{source.name} seed {seed}: {len(table)} evaluations under {table['protocol'].nunique()} "
          f"protocols -> {Path(args.out) / SWEEP_FILE}")
    return 0


def add_dataset_dirs(params: Params, folders: list[Path]) -> tuple[Params, list[str]]:
    """The configuration with each folder as a generic target named after it, and those names.

    A name that data.targets already uses for another dataset is refused rather than replaced: the
    results and caches of the two would be filed under one name.
    """
    targets = params.data.targets
    added: dict[str, dict[str, str]] = {}
    names: list[str] = []
    for folder in folders:
        if not folder.is_dir():
            raise HecvlError("--dataset-dir: dataset folder not found", folder)
        name = folder.resolve().name
        same = name in targets and targets[name].format == "generic" and (
            Path(targets[name].root).resolve() == folder.resolve())
        if name in added or (name in targets and not same):
            raise HecvlError(
                f"--dataset-dir: the name {name!r} (the folder's) is already taken by "
                f"{'another --dataset-dir' if name in added else 'a dataset of data.targets'}: "
                "rename the folder", folder)
        if not same:
            added[name] = {"format": "generic", "root": str(folder)}
        names.append(name)
    return (params.updated({"data": {"targets": added}}) if added else params), names


def parse_setting(text: str) -> tuple[str, str]:
    """'SPACE-PROMPTS' -> (space, prompts), both checked against the known names."""
    space, sep, prompts = text.partition("-")
    if not sep or space not in SPACES or prompts not in STYLES:
        raise HecvlError(
            f"--setting {text!r}: expected SPACE-PROMPTS with SPACE in {', '.join(SPACES)} and "
            f"PROMPTS in {', '.join(STYLES)}"
        )
    return space, prompts


def evaluation_plan(
    settings: EvalSettings, datasets: list[str], source: ModelSource, args: argparse.Namespace
) -> list[Evaluation]:
    """Every (dataset, setting) the command asks for, with its own output folder.

    Several evaluations need a --out template that tells them apart; a plain folder would make them
    overwrite one another.
    """
    if args.setting and (args.space or args.prompts):
        raise HecvlError("--setting replaces --space and --prompts: give one or the other")
    pairs = [parse_setting(s) for s in args.setting] if args.setting else [(args.space, args.prompts)]
    if any(space is not None and space not in source.spaces for space, _ in pairs):
        raise HecvlError(
            f"--setting gives a space, which does not apply to --format {source.format}: use --prompts"
        )
    template = str(args.out)
    needed = [name for name, many in (("dataset", len(datasets)), ("setting", len(pairs))) if many > 1]
    fields = {"dataset": ("{dataset}",), "setting": ("{space}", "{prompts}")}
    for name in needed:
        if not any(f in template for f in fields[name]):
            raise HecvlError(
                f"several {name}s need an --out template with {' or '.join(fields[name])}, "
                f"or every evaluation would write to {template}"
            )
    plan = []
    for dataset in datasets:
        for space, prompts in pairs:
            changes = {"space": space, "prompts": prompts, "device": args.device}
            item = settings.replace(**{k: v for k, v in changes.items() if v is not None})
            out = template
            for key, value in (("dataset", dataset), ("space", source.levels(item.space)[0]),
                               ("prompts", item.prompts)):
                out = out.replace("{" + key + "}", value)
            plan.append(Evaluation(dataset, item, Path(out)))
    outs = [e.out for e in plan]
    if len(set(outs)) < len(outs):
        raise HecvlError(f"--out {template} gives two evaluations the same folder")
    return plan
