"""Vendor intake: loading exports into the intake schema and materializing them.

- ``simplicity``: a Simplicity CSV export -> ``intake.simplicity_import_rows`` (COPY),
  then ``process_simplicity_imports()``; see docs/import.md.
"""
