"""Raw CTR table layouts: Criteo, Avazu, and generic tables described by a small schema file.

A `TableFormat` says which columns a raw file has, in what order, which one is the label, and how
each column is treated. Feature names are the datasets' own (Criteo `I1`..`I13`, `C1`..`C26`;
Avazu's header names), and the serving signatures use the same names.
"""

import dataclasses
import os

import yaml

CRITEO_NUMERIC = tuple(f"I{i}" for i in range(1, 14))
CRITEO_CATEGORICAL = tuple(f"C{i}" for i in range(1, 27))

AVAZU_COLUMNS = (
    "id", "click", "hour", "C1", "banner_pos", "site_id", "site_domain", "site_category", "app_id",
    "app_domain", "app_category", "device_id", "device_ip", "device_model", "device_type",
    "device_conn_type", "C14", "C15", "C16", "C17", "C18", "C19", "C20", "C21",
)  # fmt: skip


@dataclasses.dataclass(frozen=True)
class TableFormat:
    """The layout of one raw table.

    Every column must be exactly one of the label, a numeric, categorical or dropped column, or
    the hour column.

    Attributes:
        name: the format's name, such as "criteo".
        columns: every column in file order.
        label: the 0/1 label column, or None for unlabeled rows.
        numeric: integer columns (may be empty; bucketized later, then treated as categorical).
        categorical: string columns (may be empty).
        dropped: columns parsed for their count only.
        hour: an Avazu-style YYMMDDHH column, replaced by the derived fields `hour_of_day` and
            `day_of_week`.
        delimiter: the one character between columns.
        header: whether the first line of each file names the columns.

    Raises:
        ValueError: a column has no role or more than one, or the delimiter is not one character.
    """

    name: str
    columns: tuple[str, ...]
    label: str | None
    numeric: tuple[str, ...] = ()
    categorical: tuple[str, ...] = ()
    dropped: tuple[str, ...] = ()
    hour: str | None = None
    delimiter: str = "\t"
    header: bool = False

    def __post_init__(self):
        named = [self.label] if self.label else []
        named += [*self.numeric, *self.categorical, *self.dropped]
        named += [self.hour] if self.hour else []
        if sorted(named) != sorted(self.columns):
            raise ValueError(
                f"format {self.name!r}: every column must be exactly one of label, numeric, "
                f"categorical, dropped or hour; columns {list(self.columns)}, roles {named}"
            )
        if len(self.delimiter) != 1:
            raise ValueError(f"format {self.name!r}: delimiter must be one character")

    @property
    def derived(self) -> tuple[str, ...]:
        """Fields computed from the hour column."""
        return ("hour_of_day", "day_of_week") if self.hour else ()

    @property
    def feature_fields(self) -> tuple[str, ...]:
        """The model's input fields, in a fixed order."""
        return (*self.numeric, *self.categorical, *self.derived)

    def unlabeled(self) -> "TableFormat":
        """The same layout without its label column (for example Criteo's test files).

        Returns:
            This format if it has no label, else a copy named `NAME-unlabeled` without the label
            column.
        """
        if self.label is None:
            return self
        return dataclasses.replace(
            self,
            name=f"{self.name}-unlabeled",
            columns=tuple(c for c in self.columns if c != self.label),
            label=None,
        )


CRITEO = TableFormat(
    name="criteo",
    columns=("label", *CRITEO_NUMERIC, *CRITEO_CATEGORICAL),
    label="label",
    numeric=CRITEO_NUMERIC,
    categorical=CRITEO_CATEGORICAL,
)

AVAZU = TableFormat(
    name="avazu",
    columns=AVAZU_COLUMNS,
    label="click",
    categorical=AVAZU_COLUMNS[3:],
    dropped=("id",),
    hour="hour",
    delimiter=",",
    header=True,
)

BUILTIN = {"criteo": CRITEO, "criteo-test": CRITEO.unlabeled(), "avazu": AVAZU}


def load_schema(path: str) -> TableFormat:
    """Reads a generic table's schema file (YAML or JSON).

    Keys: `columns` (all columns in file order), `label`, `categorical`, `numeric` (integers),
    `dropped`, `delimiter` (default ","), `header` (default true).

    Args:
        path: the schema file; its base name without extension names the format.

    Returns:
        The table's format.

    Raises:
        ValueError: the file cannot be read, is not a mapping, has unknown keys or no `columns`,
            or describes an invalid format.
    """
    try:
        with open(path) as f:
            spec = yaml.safe_load(f)
    except (OSError, yaml.YAMLError) as e:
        raise ValueError(f"schema file {path}: cannot read it: {e}") from e
    if not isinstance(spec, dict):
        raise ValueError(f"schema file {path}: expected a mapping, got {type(spec).__name__}")
    known = {"columns", "label", "categorical", "numeric", "dropped", "delimiter", "header"}
    unknown = set(spec) - known
    if unknown:
        raise ValueError(
            f"schema file {path}: unknown keys {sorted(unknown)}; known: {sorted(known)}"
        )
    if "columns" not in spec:
        raise ValueError(f"schema file {path}: `columns` (every column, in file order) is required")
    try:
        return TableFormat(
            name=os.path.splitext(os.path.basename(path))[0],
            columns=tuple(spec["columns"]),
            label=spec.get("label"),
            numeric=tuple(spec.get("numeric", ())),
            categorical=tuple(spec.get("categorical", ())),
            dropped=tuple(spec.get("dropped", ())),
            delimiter=spec.get("delimiter", ","),
            header=bool(spec.get("header", True)),
        )
    except (TypeError, ValueError) as e:
        raise ValueError(f"schema file {path}: {e}") from e


def get_format(name: str, schema: str | None = None) -> TableFormat:
    """A built-in format or a generic one read from a schema file.

    Args:
        name: `criteo`, `criteo-test`, `avazu`, or `generic` with a schema file.
        schema: the schema file's path (`load_schema`), for `generic` (ignored otherwise).

    Returns:
        The table's format.

    Raises:
        ValueError: the name is unknown, `generic` has no schema file, or the schema file is
            invalid.
    """
    if name == "generic":
        if not schema:
            raise ValueError("format 'generic' needs a schema file (--schema PATH)")
        return load_schema(schema)
    if name not in BUILTIN:
        raise ValueError(f"unknown format {name!r}; known: {sorted(BUILTIN)} and 'generic'")
    return BUILTIN[name]

