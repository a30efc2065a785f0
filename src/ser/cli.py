"""The `ser` console command.

    ser predict PATH... [--model models] [--adapt all|folder|REGEX] [--json] [--csv FILE]
    ser predict --card [MODEL_DIR] [--json]
    ser predict PATH... --runtime onnx --model EXPORTED   (a folder written by `ser export --onnx`)
    ser export --onnx OUT [--model models]
    ser serve [--model models] [--host 127.0.0.1] [--port 7860] [--max-upload-mb 25] [--max-seconds 120]

Each PATH is an audio file, or a folder whose audio files are all predicted
(and then written to a CSV, `predictions.csv` unless --csv names another).
Every file gets its line: the emotion, "no speech detected", or `error: <file>: <problem>`; a file
judged despite a problem (one cut short) also gets `warning: <file>: <problem>` on stderr.
`--card` prints, for each run model of MODEL_DIR (default: --model's), what trained it: arch, protocol,
corpora, speakers, clips per emotion and the code's commit (its whole card with --json); no audio is read.
Exit status: 0 when no file failed ("no speech detected" is an answer, not a failure),
1 when any could not be read or predicted, 2 on usage errors.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

from .io import atomic_path


def _predict(args) -> int:
    from .predict import FAILED, Predictor, adaptation_groups, audio_files

    files, any_folder = [], False
    for name in args.paths:
        path = Path(name)
        if path.is_dir():
            any_folder = True
            found = audio_files(path)
            if not found:
                print(f"error: {path}: no audio files in this folder", file=sys.stderr)
            files.extend(found)
        else:
            files.append(path)
    try:
        predictor = make_predictor(args.runtime, args.model, device=args.device, window_seconds=args.window,
                                   detect_speech=not args.no_speech_check)
    except (FileNotFoundError, ValueError, ImportError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    try:
        groups = adaptation_groups(files, args.adapt)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    results = [None] * len(files)
    for group in groups:
        for position, result in zip(group, predictor.predict_group([files[i] for i in group])):
            results[position] = result
    for result in results:
        if result.warning:
            print(f"warning: {result.warning}", file=sys.stderr)
        if result.status == FAILED:
            print(f"error: {result.error}", file=sys.stderr)
        elif not args.json:
            print("\t".join([result.path, *describe(result)]))
    if args.json:
        print(json.dumps([vars(r) for r in results], indent=2))
    csv_path = args.csv or ("predictions.csv" if any_folder else None)
    if csv_path:
        columns = ["path", "status", "emotion", *predictor.labels, "speech_seconds", "duration", "windows", "error",
                   "warning"]
        rows = [{**vars(r), **r.probabilities} for r in results]
        with atomic_path(csv_path, suffix=".csv") as tmp:
            pd.DataFrame(rows, columns=columns).to_csv(tmp, index=False)
        print(f"wrote {csv_path} ({len(rows)} files)", file=sys.stderr)
    failed = sum(1 for r in results if r.status == FAILED) + (0 if files else 1)
    return 1 if failed else 0


def make_predictor(runtime: str, model: str, **options):
    """`ser predict`'s and `ser serve`'s predictor: the model directory in PyTorch, or (`onnx`) the folder
    `ser export --onnx` wrote, in onnxruntime."""
    if runtime == "onnx":
        from .onnx_runtime import OnnxPredictor

        options.pop("device", None)  # onnxruntime's CPU provider
        return OnnxPredictor(model, **options)
    from .predict import Predictor

    try:
        return Predictor(model, **options)
    except ModuleNotFoundError as error:
        if error.name not in ("torch", "ctranslate2", "silero_vad"):
            raise
        raise ImportError(f"the torch runtime needs {error.name}, which is not installed here "
                          f"(pip install 'ser-pipeline[train]'); or run a model exported by `ser export --onnx` "
                          f"with --runtime onnx") from None


def _export(args) -> int:
    try:
        from .onnx_export import ExportRefused, export_onnx
    except ModuleNotFoundError as error:
        print(f"error: ser export needs {error.name} (pip install 'ser-pipeline[export]')", file=sys.stderr)
        return 1
    try:
        sidecar = export_onnx(args.model, args.onnx)
    except (ExportRefused, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    from .onnx_runtime import SIDECAR

    runs = len(sidecar["runs"])
    print(f"wrote {args.onnx}: {', '.join(sidecar['files'])} and {SIDECAR} ({sidecar['arch']}, {runs} run "
          f"model{'s' if runs > 1 else ''}; largest difference from PyTorch on a probe signal: "
          f"{sidecar['check']['max_abs_probability_difference']:.1e})", file=sys.stderr)
    return 0


def _cards(args) -> int:
    if args.runtime != "onnx":
        from .checkpoint import model_dirs, read_card

    model_dir = args.card or args.model
    try:
        if args.runtime == "onnx":  # an exported folder keeps its runs' cards in its sidecar
            from .onnx_runtime import read_export

            sidecar = read_export(model_dir)
            cards = {str(Path(model_dir) / run): card for run, card in zip(sidecar["runs"], sidecar["cards"])}
        else:
            cards = {str(directory): read_card(directory) for directory in model_dirs(model_dir)}
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(cards, indent=2))
    else:
        print("\n".join(line for path, card in cards.items() for line in card_lines(path, card)))
    return 0


def card_lines(path: str, card: dict) -> list[str]:
    """What a run model's card says of what trained it, as lines for a person."""
    split = card.get("split") or {}
    run = ", ".join(f"{key} {split[key]}" for key in ("repeat", "fold") if key in split)
    protocol = f"{split.get('protocol', 'not recorded')}{f' ({run})' if run else ''}"
    commit = card.get("commit")
    if commit:
        code = commit["id"] + {True: " (with uncommitted code changes)", None: " (code changes unknown)"}.get(
            commit.get("uncommitted_code"), "")
    else:
        code = "not recorded"
    lines = [path, f"  arch: {card['arch']}", f"  protocol: {protocol}", f"  commit: {code}"]
    trained = card.get("trained_on")
    if trained is None:  # a card written before ser recorded it
        corpora = split.get("train_corpora")
        return lines + [f"  corpora: {', '.join(corpora) if corpora else 'not recorded'}",
                        "  speakers: not recorded (an older card)",
                        f"  clips: {(card.get('refit') or card)['train_clips']} (per emotion not recorded)"]
    per_emotion = ", ".join(f"{emotion} {count}" for emotion, count in trained["clips_per_emotion"].items())
    return lines + [f"  corpora: {', '.join(trained['corpora'])}",
                    f"  speakers ({len(trained['speakers'])}): {', '.join(trained['speakers'])}",
                    f"  clips: {trained['clips']} ({per_emotion}); augmented copies: {trained['augmented_copies']}"]


def describe(result) -> list[str]:
    """The fields of a file's line after its path: the emotion and the probabilities, or "no speech detected"."""
    from .predict import NO_SPEECH

    if result.status == NO_SPEECH:
        return [NO_SPEECH]
    ranked = sorted(result.probabilities.items(), key=lambda kv: -kv[1])
    speech = [] if result.speech_seconds is None else [f"speech {result.speech_seconds:.1f} of {result.duration:.1f} s"]
    return [result.emotion, " ".join(f"{k}={v:.3f}" for k, v in ranked), *speech]


def _limit(text: str) -> float:
    """A `ser serve` limit: a number >= 0, where 0 means none."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r}: give a number >= 0 (0: no limit)")
    return value


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="ser", description="Speech emotion recognition (RAVDESS-trained).")
    commands = parser.add_subparsers(dest="command", required=True)
    predict = commands.add_parser("predict", help="the emotion of each recording, with every class's probability")
    predict.add_argument("paths", nargs="*", help="audio files (wav, flac, ogg, mp3, ...) or folders")
    predict.add_argument("--model", default="models", help="trained model directory (default: models)")
    predict.add_argument("--json", action="store_true", help="print JSON instead of one line per file")
    predict.add_argument("--card", nargs="?", const="", metavar="MODEL_DIR",
                         help="print what trained each run model of MODEL_DIR (default: --model's) instead: "
                              "arch, protocol, corpora, speakers, clips per emotion, commit; no audio path")
    predict.add_argument("--csv", help="also write a CSV here (default for folders: predictions.csv)")
    predict.add_argument("--device", default="auto", help="auto | cpu | cuda")
    predict.add_argument("--window", type=float, default=6.0,
                         help="seconds per window for long recordings; window probabilities are averaged")
    predict.add_argument("--adapt", metavar="GROUPS", default=None,
                         help="standardize each group of recordings on its own statistics (no label is read): all "
                              "(every file given), folder (a group per folder), or a regular expression whose first "
                              "group, read from each file name, names the speaker or site (e.g. '^(\\d+)_'); "
                              "default: every file alone, with the training statistics")
    predict.add_argument("--no-speech-check", action="store_true",
                         help="give an emotion even where the voice activity detector finds no speech")
    predict.add_argument("--runtime", choices=("torch", "onnx"), default="torch",
                         help="torch: the model directory in PyTorch; onnx: a folder written by `ser export "
                              "--onnx` (give it as --model), in onnxruntime, without PyTorch")
    export = commands.add_parser("export", help="write the model directory as ONNX graphs for --runtime onnx")
    export.add_argument("--onnx", required=True, metavar="OUT", help="the folder to write")
    export.add_argument("--model", default="models", help="trained model directory (default: models)")
    serve = commands.add_parser("serve", help="a web page to upload or record a clip and see the probabilities")
    serve.add_argument("--model", default="models", help="trained model directory (default: models)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 for the network)")
    serve.add_argument("--port", type=int, default=7860)
    serve.add_argument("--device", default="auto", help="auto | cpu | cuda")
    serve.add_argument("--runtime", choices=("torch", "onnx"), default="torch",
                       help="onnx: --model is a folder written by `ser export --onnx`, run in onnxruntime")
    # Defaults None: ser.webapp's MAX_UPLOAD_MB and MAX_SECONDS (importing it here would load Gradio for
    # every `ser predict`).
    serve.add_argument("--max-upload-mb", type=_limit, default=None, metavar="MB",
                       help="refuse an upload larger than this many MB (1 MB = 1048576 bytes); 0: no limit "
                            "(default: 25)")
    serve.add_argument("--max-seconds", type=_limit, default=None, metavar="S",
                       help="refuse a recording longer than this, by its header's length before decoding; "
                            "0: no limit (default: 120)")
    args = parser.parse_args(argv)
    if args.command == "export":
        return _export(args)
    if args.command == "predict":
        if args.card is not None:
            if args.paths:
                predict.error(f"--card reads no audio: drop {' '.join(args.paths)}")
            return _cards(args)
        if not args.paths:
            predict.error("the following arguments are required: paths")
    if args.command == "serve":
        from .webapp import serve as run_server

        try:
            limits = {name: (value or None) for name, value in (("max_upload_mb", args.max_upload_mb),
                                                                ("max_seconds", args.max_seconds)) if value is not None}
            run_server(args.model, host=args.host, port=args.port, device=args.device, runtime=args.runtime,
                       **limits)
        except FileNotFoundError as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
        return 0
    return _predict(args)


if __name__ == "__main__":
    sys.exit(main())
