"""A web page for the trained model: upload or record a clip, see every emotion's probability.

    ser serve [--model models] [--host 127.0.0.1] [--port 7860] [--max-upload-mb 25] [--max-seconds 120]

Gradio because its `Audio` input already does upload and microphone recording
and its `Label` output is the bar chart of class probabilities, so the page is
a few lines over `ser.predict.Predictor`, the same code as `ser predict`.

The page's HTTP API is its one event, `/predict` (docs/serving.md). Predictions run one at a time, in
arrival order: others wait in Gradio's queue. An upload past `max_upload_mb` is refused while it streams
in (Gradio's `max_file_size`, HTTP 413), and a recording past `max_seconds` before it is decoded, by the
length its header states, so that no one upload holds the queue for long.
"""

from __future__ import annotations

import os
from pathlib import Path

# Gradio otherwise phones home for analytics and version checks; this tool runs offline.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

try:
    import gradio as gr
except ImportError as error:  # pragma: no cover - depends on the environment
    raise SystemExit("ser serve needs Gradio: pip install 'ser-pipeline[web]' (requirements.txt pins it)") from error

import soundfile as sf  # noqa: E402

from .corpora import RAVDESS  # noqa: E402
from .predict import FAILED, NO_SPEECH, Predictor  # noqa: E402

# Two minutes of 48 kHz stereo 16-bit WAV; compressed formats hold far more, which MAX_SECONDS bounds.
MAX_UPLOAD_MB = 25.0
# 39 six-second windows of features and model, while every other upload waits in the queue; RAVDESS's
# clips, which the model knows, last about 4 s.
MAX_SECONDS = 120.0
MB = 1024 * 1024  # Gradio's "mb" in max_file_size
# libsndfile's frame count where a header leaves the length open (SF_COUNT_MAX)
UNKNOWN_FRAMES = 2 ** 63 - 1

# System fonts only: the default theme pulls Google Fonts, which offline machines cannot reach.
THEME = gr.themes.Default(font=["system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"])


def trained_corpora(card) -> str:
    """The corpora a model's card says it trained on; RAVDESS for a card older than that record."""
    return ", ".join((card.trained_on or {}).get("corpora") or [RAVDESS])


def header_seconds(path: str | Path) -> float | None:
    """The recording's length as its header states it, nothing decoded; None where it states none or the
    file cannot be opened as audio (the predictor then names the problem)."""
    try:
        info = sf.info(str(path))
    except Exception:  # soundfile raises LibsndfileError, RuntimeError, TypeError...
        return None
    if info.samplerate <= 0 or not 0 < info.frames < UNKNOWN_FRAMES:
        return None
    return info.frames / info.samplerate


def seconds_limit_message(seconds: float, max_seconds: float) -> str:
    return (f"This recording is {seconds:.1f} s long: over this server's limit of {max_seconds:g} s of audio "
            f"(ser serve --max-seconds). Send a shorter clip, or use ser predict, which takes any length.")


def build_app(predictor: Predictor, max_upload_mb: float | None = MAX_UPLOAD_MB,
              max_seconds: float | None = MAX_SECONDS) -> gr.Blocks:
    """The page. `max_upload_mb` here covers a file that reached the event without Gradio's upload route
    (which `launch(max_file_size=...)` guards); `max_seconds` is checked on every recording."""
    def predict(path: str | None) -> tuple[dict[str, float] | None, str]:
        if path is None:
            return None, ""
        size = os.path.getsize(path)
        if max_upload_mb is not None and size > max_upload_mb * MB:
            raise gr.Error(f"This upload is {size / MB:.1f} MB: over this server's limit of {max_upload_mb:g} MB "
                           f"({int(max_upload_mb * MB)} bytes; ser serve --max-upload-mb)")
        length = header_seconds(path)
        if max_seconds is not None and length is not None and length > max_seconds:
            raise gr.Error(seconds_limit_message(length, max_seconds))
        result = predictor.predict_file(path)
        if result.status == FAILED:
            # The upload's temporary path means nothing to the user.
            raise gr.Error(result.error.replace(str(path), "this recording"))
        if max_seconds is not None and length is None and result.duration > max_seconds:
            # A header without a length: only the decoded signal tells, after the work is done.
            raise gr.Error(seconds_limit_message(result.duration, max_seconds))
        if result.status == NO_SPEECH:  # an answer, not an error: nothing here to judge
            return None, f"**{NO_SPEECH}** in this {result.duration:.1f} s recording: no emotion is given"
        seconds = "one window" if result.windows == 1 else f"{result.windows} windows averaged"
        speech = "" if result.speech_seconds is None else f"{result.speech_seconds:.1f} s of speech; "
        return result.probabilities, f"**{result.emotion}** ({speech}{seconds}; model `{predictor.card.arch}`)"

    with gr.Blocks(title="Speech emotion recognition") as app:
        limits = " and ".join(limit for limit in (max_seconds and f"{max_seconds:g} s",
                                                  max_upload_mb and f"{max_upload_mb:g} MB") if limit)
        gr.Markdown("## Speech emotion recognition\nUpload or record a clip of speech or song"
                    f"{f' (at most {limits})' if limits else ''}: the model "
                    f"(`{predictor.card.arch}`, trained on {trained_corpora(predictor.card)}) gives the probability "
                    f"of each of its {len(predictor.labels)} emotions.")
        with gr.Row():
            audio = gr.Audio(sources=["upload", "microphone"], type="filepath", label="Recording")
            with gr.Column():
                probabilities = gr.Label(num_top_classes=len(predictor.labels), label="Probabilities",
                                         elem_id="probabilities")
                summary = gr.Markdown(elem_id="summary", label="Summary")
        # One at a time, whatever GRADIO_DEFAULT_CONCURRENCY_LIMIT says: Silero VAD's model keeps its
        # state between the chunks of one recording, so two predictions at once would corrupt each other,
        # and without the limit 16 concurrent uploads crashed the server (SIGSEGV; tests/test_serve_load.py).
        audio.change(predict, inputs=audio, outputs=[probabilities, summary], api_name="predict",
                     concurrency_limit=1)
    return app


def serve(model_dir: str = "models", host: str = "127.0.0.1", port: int = 7860, device: str = "auto",
          max_upload_mb: float | None = MAX_UPLOAD_MB, max_seconds: float | None = MAX_SECONDS,
          runtime: str = "torch"):
    from .cli import make_predictor  # runtime onnx: `model_dir` is a folder written by `ser export --onnx`

    app = build_app(make_predictor(runtime, model_dir, device=device), max_upload_mb=max_upload_mb,
                    max_seconds=max_seconds)
    app.launch(server_name=host, server_port=port, theme=THEME, ssr_mode=False, footer_links=["api"],
               max_file_size=None if max_upload_mb is None else int(max_upload_mb * MB))
