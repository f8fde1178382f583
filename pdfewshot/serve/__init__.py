"""``pdfewshot serve``: a local web page and HTTP API over a predictor (:mod:`.service` runs the
classifier, :mod:`.app` is the FastAPI application, ``page/`` the browser page it serves)."""
