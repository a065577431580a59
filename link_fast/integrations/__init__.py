"""Adapters to other data tools: ``datatrove`` (a pipeline step) and ``hf`` (``Dataset.map``).

Each is imported on its own, so link_fast itself does not depend on either tool.
"""
