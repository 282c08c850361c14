"""In-process DuckDB over the workspace's Parquet, and read-only SQL for users.

Views of a connection (a snapshot of the manifests when it was opened):
    pseudo_labels   one row per (round, image, region) of every committed shard, with
                    `clip_class_name`: the name of `clip_class_id` (the class CLIP picked)
    images          one row per (round, image), also images without regions
    shards          committed shards: round, shard, key, rows, images, committed_at, round_committed
    rounds          the lineage records (one per stage and round); `config`, `row_counts` and
                    `metrics` are JSON
    class_stats, confidence_histogram, sam_vs_agreement, class_coverage_drift,
    images_without_accepted   quality views (storage.views)
    quarantine                target files that could not be read, with the reason
    human_labels    masks corrected by people and imported (`ovseg review import`)

Query results carry DuckDB's JSON type into Arrow as field metadata (JSON_TYPE_KEY), so a
reader can tell JSON columns from text. A user's error names the user's own text: a condition
(`check_condition`) is checked alone before it is put into a larger query, and a column that
does not exist is answered with the columns of the views the query reads.

No DuckDB database file is created: another process can always read the same store. Once the
views exist, the connection is locked: no file access outside the workspace root, no
extensions, no configuration changes.
"""

from __future__ import annotations

import re
from contextlib import nullcontext
from datetime import datetime
from typing import TYPE_CHECKING

import duckdb
import pyarrow as pa

from storage import human_labels
from storage.errors import StorageError
from storage.fsio import is_local
from storage.hashing import canonical_json
from storage.schema import (
    HUMAN_LABEL_SCHEMA,
    IMAGES_SCHEMA,
    PSEUDO_LABEL_SCHEMA,
    SCHEMA_VERSION,
)
from storage.views import QUALITY_VIEWS
from storage.workspace import Workspace

_PARENT = re.compile(r"\.\.[/\\]|[/\\]\.\.(?=$|[^\w.])", re.MULTILINE)
_READ_ONLY = {duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN}

_ROUNDS_SCHEMA = pa.schema([
    ("stage", pa.string()), ("round", pa.int32()), ("parent_round", pa.int32()),
    ("status", pa.string()), ("checkpoint_uri", pa.string()), ("checkpoint_sha256", pa.string()),
    ("config_hash", pa.string()), ("config", pa.string()), ("package_version", pa.string()),
    ("git_commit", pa.string()), ("dataset_manifest_hash", pa.string()),
    ("gate_threshold", pa.float32()), ("started_at", pa.timestamp("us", tz="UTC")),
    ("ended_at", pa.timestamp("us", tz="UTC")), ("row_counts", pa.string()),
    ("metrics", pa.string()),
])
_JSON_FIELDS = ("config", "row_counts", "metrics")
JSON_TYPE_KEY = b"duckdb_type"
"""Arrow field metadata key set to b"JSON" on a result column of DuckDB's JSON type."""
_TIME_FIELDS = ("started_at", "ended_at")


def _as_workspace(workspace: Workspace | str) -> Workspace:
    return workspace if isinstance(workspace, Workspace) else Workspace(workspace)


def _rounds_table(ws: Workspace) -> pa.Table:
    rows = []
    for record in ws.lineage():
        row = record.to_dict()
        for name in _JSON_FIELDS:
            row[name] = canonical_json(row[name])
        for name in _TIME_FIELDS:
            row[name] = datetime.fromisoformat(row[name]) if row[name] else None
        rows.append({name: row[name] for name in _ROUNDS_SCHEMA.names})
    return pa.Table.from_pylist(rows, schema=_ROUNDS_SCHEMA)


def _shards_table(ws: Workspace, entries: dict[int, list[dict]]) -> pa.Table:
    rows = []
    for r, round_entries in entries.items():
        committed = ws.is_round_committed(r)
        rows += [{"round": e["round"], "shard": e["shard"], "key": e["key"], "rows": e["rows"],
                  "images": e["images"], "committed_at": e["committed_at"],
                  "round_committed": committed} for e in round_entries]
    schema = pa.schema([("round", pa.int32()), ("shard", pa.int32()), ("key", pa.string()),
                        ("rows", pa.int64()), ("images", pa.int64()),
                        ("committed_at", pa.string()), ("round_committed", pa.bool_())])
    return pa.Table.from_pylist(rows, schema=schema)


def _parquet_view(con, name: str, files: list[str], empty: pa.Table) -> None:
    if files:
        listing = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
        con.execute(f"CREATE VIEW {name} AS SELECT * FROM "
                    f"read_parquet([{listing}], hive_partitioning = false)")
    else:
        con.register(f"_empty_{name}", empty)
        con.execute(f"CREATE VIEW {name} AS SELECT * FROM _empty_{name}")


_PSEUDO_LABELS = """
    CREATE VIEW pseudo_labels AS
    SELECT p.*, n.class_name AS clip_class_name FROM _pseudo_label_rows p
    LEFT JOIN (SELECT class_id, any_value(class_name) AS class_name FROM _pseudo_label_rows
               GROUP BY class_id) n ON n.class_id = p.clip_class_id"""
"""The pseudo_labels view: the shards' rows and the name of the class CLIP picked (the name
its id has as a row's class; NULL when no row of the store has that class)."""


def _lock(con, ws: Workspace) -> None:
    root = ws.root.rstrip("/") + "/"
    con.execute("SET python_enable_replacements = false")
    con.execute("SET autoinstall_known_extensions = false")
    con.execute("SET autoload_known_extensions = false")
    con.execute("SET allowed_directories = $dirs", {"dirs": [root]})
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")


def _check_versions(ws: Workspace, entries: list[dict]) -> None:
    """StorageError when a committed shard was written with another store schema version."""
    old = sorted({e["round"] for e in entries if e.get("schema_version") != SCHEMA_VERSION})
    if old:
        raise StorageError(
            f"{ws.root}: round(s) {', '.join(map(str, old))} were written by another ovseg "
            f"version (store schema {_versions(entries)}; this one reads {SCHEMA_VERSION}). "
            "Redo them with `ovseg run --redo-round R`, or start a new workspace.")


def _versions(entries: list[dict]) -> str:
    return ", ".join(sorted({str(e.get("schema_version")) for e in entries}))


def connect(workspace: Workspace | str) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with the workspace's views (see the module docstring).

    The caller closes it (or uses it as a context manager).
    """
    ws = _as_workspace(workspace)
    con = duckdb.connect(":memory:")
    if not is_local(ws.fs):
        con.register_filesystem(ws.fs)
    by_round = {r: ws.shard_entries(r) for r in ws.rounds()}
    entries = [e for round_entries in by_round.values() for e in round_entries]
    _check_versions(ws, entries)
    _parquet_view(con, "_pseudo_label_rows", [ws.url(e["pseudo_labels"]) for e in entries],
                  PSEUDO_LABEL_SCHEMA.empty_table())
    con.execute(_PSEUDO_LABELS)
    _parquet_view(con, "images", [ws.url(e["images_file"]) for e in entries],
                  IMAGES_SCHEMA.empty_table())
    _parquet_view(con, "human_labels", human_labels.files(ws), HUMAN_LABEL_SCHEMA.empty_table())
    con.register("_shards", _shards_table(ws, by_round))
    con.execute("CREATE VIEW shards AS SELECT * FROM _shards")
    con.register("_rounds", _rounds_table(ws))
    con.execute("CREATE VIEW rounds AS SELECT * REPLACE ("
                + ", ".join(f"{n}::JSON AS {n}" for n in _JSON_FIELDS) + ") FROM _rounds")
    for name, sql in QUALITY_VIEWS.items():
        con.execute(f"CREATE VIEW {name} AS {sql}")
    _lock(con, ws)
    return con


if TYPE_CHECKING:  # not at run time: a module-level reference to DuckDB's connection type
    # outlives DuckDB's own teardown and makes it report leaks at exit
    Store = Workspace | str | duckdb.DuckDBPyConnection
    """Where a read goes: a workspace (a connection is opened and closed for it) or a
    connection from `connect` that the caller keeps open, so one step's several reads share
    one snapshot and one listing of the manifests."""


def opened(store: Store):
    """A context manager giving a connection for `store`: its own, closed on exit, for a
    workspace; the caller's, left open, for a connection."""
    if isinstance(store, duckdb.DuckDBPyConnection):
        return nullcontext(store)
    return connect(store)  # a DuckDB connection closes itself at the end of a `with`


def check_read_only(query: str, params: list | dict | None = None) -> None:
    """Raise StorageError unless `query` is exactly one SELECT (or EXPLAIN) statement, with no
    '..' path segment in it or in its string parameters."""
    try:
        statements = duckdb.extract_statements(query)
    except duckdb.Error as exc:
        raise StorageError(f"cannot parse the query: {_first_line(exc)}") from None
    if len(statements) != 1:
        raise StorageError(f"give exactly one statement (got {len(statements)})")
    kind = statements[0].type
    values = params.values() if isinstance(params, dict) else params or []
    if any(_PARENT.search(v) for v in [query, *values] if isinstance(v, str)):
        raise StorageError("refused: '..' path segments are not allowed in queries")
    if kind not in _READ_ONLY:
        raise StorageError(f"the store is read-only: {kind.name} statements are refused; "
                           f"only SELECT queries run")


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def execute(con: duckdb.DuckDBPyConnection, query: str,
            params: list | dict | None = None) -> pa.Table:
    """Run one read-only statement on `con` with bound `params`; user errors -> StorageError."""
    check_read_only(query, params)
    try:
        relation = con.sql(query, params=params)
        return _mark_json(relation.to_arrow_table(), [str(t) for t in relation.types])
    except duckdb.PermissionException as exc:
        raise StorageError(f"refused: the query reads files outside the workspace "
                           f"({_first_line(exc)})") from None
    except duckdb.CatalogException as exc:
        raise StorageError(f"{_first_line(exc)} (the views: {', '.join(view_names(con))})"
                           ) from None
    except duckdb.BinderException as exc:
        raise StorageError(_first_line(exc) + _columns_hint(con, exc, query)) from None
    except duckdb.Error as exc:
        raise StorageError(_first_line(exc)) from None


def _mark_json(table: pa.Table, types: list[str]) -> pa.Table:
    """`table` with JSON_TYPE_KEY metadata on the columns DuckDB typed JSON."""
    if "JSON" not in types:
        return table
    fields = [f.with_metadata({**(f.metadata or {}), JSON_TYPE_KEY: b"JSON"}) if t == "JSON"
              else f for f, t in zip(table.schema, types, strict=True)]
    return table.cast(pa.schema(fields, metadata=table.schema.metadata))


def _columns_hint(con, exc: Exception, query: str) -> str:
    """For a column that does not exist: the columns of the views `query` names."""
    if "Referenced column" not in str(exc):
        return ""
    named = [v for v in view_names(con) if re.search(rf"\b{v}\b", query, re.IGNORECASE)]
    parts = [f"{v}: {', '.join(con.sql(f'SELECT * FROM {v} LIMIT 0').columns)}" for v in named]
    return f" (the columns of {'; of '.join(parts)})" if parts else ""


def check_condition(store: Store, condition: str, params: list | dict | None = None,
                    view: str = "pseudo_labels", name: str = "--where") -> None:
    """StorageError naming `condition` as the user wrote it (and `name`, the option it came
    from) unless it is one valid SQL condition over `view` (with its bound `params`): checked
    alone, so that an error points at the user's text, not at the query ovseg builds around
    it."""
    query = f"SELECT * FROM {view} WHERE {condition}"
    try:
        statements = duckdb.extract_statements(query)
    except duckdb.Error as exc:
        raise StorageError(f"{name} {condition!r}: {_without_kind(exc)}") from None
    if len(statements) != 1:
        raise StorageError(f"{name} {condition!r}: give one condition, not statements")
    with opened(store) as con:
        try:
            execute(con, query + "\nLIMIT 0", params)
        except StorageError as exc:
            raise StorageError(f"{name} {condition!r}: {_without_kind(exc)}") from None


def _without_kind(exc: Exception) -> str:
    """DuckDB's first error line without its "Parser Error: " prefix."""
    return re.sub(r"^\w+ Error: ", "", _first_line(exc) if isinstance(exc, duckdb.Error)
                  else str(exc))


def view_names(con: duckdb.DuckDBPyConnection) -> list[str]:
    """The views a query can read (pseudo_labels, images, rounds, ...), sorted."""
    rows = con.sql("SELECT view_name FROM duckdb_views() WHERE NOT internal "
                   "AND view_name NOT LIKE '\\_%' ESCAPE '\\' ORDER BY 1").fetchall()
    return [name for (name,) in rows]


def run_sql(store: Store, query: str, params: list | dict | None = None) -> pa.Table:
    """Run a read-only SQL query over the workspace's views (or an open connection's); values
    go in `params` (`?` or `$name` placeholders). Raises StorageError for refused statements and
    query errors."""
    check_read_only(query, params)
    with opened(store) as con:
        return execute(con, query, params)
