"""Speech emotion recognition on RAVDESS: the library behind the DVC stages."""

__version__ = "0.1.0"
