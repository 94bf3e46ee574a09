"""The HTTP service: ``kgrec serve`` (FastAPI app in :mod:`kgrec.serve.app`)."""
