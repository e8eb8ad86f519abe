"""Retrieval quality, measured on LFW: metrics, the compared pipelines, embeddings cached by
image hash, exact and indexed k-NN, 10-fold verification, and the report.

``facesearch eval`` (``evaluation.runner.run``) is the entry point. Importing this package is
cheap: TensorFlow, pymilvus and matplotlib are imported only where they are used.
"""
