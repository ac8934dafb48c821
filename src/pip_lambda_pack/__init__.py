"""pip-lambda-pack: resolve, plan, build, store and run Python serverless functions as layers."""

__version__ = "0.1.0"
