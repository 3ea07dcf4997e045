"""Raw CTR input: table formats, the shared row parser and validator, generated data."""

from ihas_keras.data.formats import AVAZU, CRITEO, TableFormat, get_format, load_schema
from ihas_keras.data.parse import REASONS, parse_lines
from ihas_keras.data.read import ReadReport, read_table, validate
from ihas_keras.data.synth import synthesize

__all__ = [
    "AVAZU", "CRITEO", "REASONS", "ReadReport", "TableFormat", "get_format",
    "load_schema", "parse_lines", "read_table", "synthesize", "validate",
]  # fmt: skip
