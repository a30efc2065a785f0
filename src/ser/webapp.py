"""A web page for the trained model: upload or record a clip, see every emotion's probability.

    ser serve [--model models] [--host 127.0.0.1] [--port 7860]

Gradio because its `Audio` input already does upload and microphone recording
and its `Label` output is the bar chart of class probabilities, so the page is
a few lines over `ser.predict.Predictor`, the same code as `ser predict`.
"""

from __future__ import annotations

import os

# Gradio otherwise phones home for analytics and version checks; this tool runs offline.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

try:
    import gradio as gr
except ImportError as error:  # pragma: no cover - depends on the environment
    raise SystemExit("ser serve needs Gradio: pip install 'ser-pipeline[web]' (requirements.txt pins it)") from error

from .predict import FAILED, NO_SPEECH, Predictor  # noqa: E402

# System fonts only: the default theme pulls Google Fonts, which offline machines cannot reach.
THEME = gr.themes.Default(font=["system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"])


def build_app(predictor: Predictor) -> gr.Blocks:
    def predict(path: str | None) -> tuple[dict[str, float] | None, str]:
        if path is None:
            return None, ""
        result = predictor.predict_file(path)
        if result.status == FAILED:
            # The upload's temporary path means nothing to the user.
            raise gr.Error(result.error.replace(str(path), "this recording"))
        if result.status == NO_SPEECH:  # an answer, not an error: nothing here to judge
            return None, f"**{NO_SPEECH}** in this {result.duration:.1f} s recording: no emotion is given"
        seconds = "one window" if result.windows == 1 else f"{result.windows} windows averaged"
        speech = "" if result.speech_seconds is None else f"{result.speech_seconds:.1f} s of speech; "
        return result.probabilities, f"**{result.emotion}** ({speech}{seconds}; model `{predictor.card.arch}`)"

    with gr.Blocks(title="Speech emotion recognition") as app:
        gr.Markdown("## Speech emotion recognition\nUpload or record a clip of speech or song: the model "
                    f"(`{predictor.card.arch}`, trained on RAVDESS) gives the probability of each of "
                    f"its {len(predictor.labels)} emotions.")
        with gr.Row():
            audio = gr.Audio(sources=["upload", "microphone"], type="filepath", label="Recording")
            with gr.Column():
                probabilities = gr.Label(num_top_classes=len(predictor.labels), label="Probabilities",
                                         elem_id="probabilities")
                summary = gr.Markdown(elem_id="summary")
        audio.change(predict, inputs=audio, outputs=[probabilities, summary])
    return app


def serve(model_dir: str = "models", host: str = "127.0.0.1", port: int = 7860, device: str = "auto"):
    app = build_app(Predictor(model_dir, device=device))
    app.launch(server_name=host, server_port=port, theme=THEME, ssr_mode=False, footer_links=["api"])
