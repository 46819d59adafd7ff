"""A recording fake of ``pymilvus.MilvusClient`` holding one application's collection, for attach on a server.

No Milvus server runs here, and Milvus Lite can't add a field, so the server attach path
is tested against this fake. It implements only the calls the adapter makes, with the
semantics Milvus documents (and, where the documentation is silent, its proxy's
``internal/proxy/task_upsert.go``), and records every call so the tests can assert on
the exact requests:

- ``add_collection_field``: the field is appended to the schema, null on every row; a
  vector field must be nullable (pymilvus refuses otherwise);
- ``upsert(partial_update=True)``: each row is first turned into pymilvus 3.0.2's own gRPC
  request (``Prepare.row_upsert_param``, kept in ``requests``), so the rows are ones the
  real client accepts; then a key that exists has the fields sent replaced and the
  others kept (dynamic keys merged); a key that doesn't is an insert, refused as a whole
  when a required field (not nullable, no default) is missing, as Milvus does. An upsert
  without ``partial_update`` fails the test: it would replace the app's rows;
- ``query``: the filters the adapter writes (``pk != ""``, ``pk <= N``, ``pk > v``,
  ``pk in [...]``), rows in primary-key order, at most ``limit``;
- ``alter_collection_properties``: the keys given are set, the others kept.

What it cannot tell: how a real server loads a field added to a loaded collection, and
whether it stores a partial upsert's null vector as null. Those are not verified.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

from pymilvus import DataType, MilvusClient
from pymilvus.client.prepare import Prepare
from pymilvus.exceptions import MilvusException, ParamError

WRITES = {
    "add_collection_field",
    "create_index",
    "alter_collection_properties",
    "upsert",
    "insert",
    "delete",
    "drop_collection",
    "drop_collection_properties",
    "create_collection",
    "release_collection",
    "drop_index",
}


class RecordingMilvus:
    """One collection (``name``) of a Milvus server, in memory; ``calls`` lists ``(method, args, kwargs)``.

    Args:
        schema: The app's ``CollectionSchema`` (pymilvus's own).
        rows: The app's rows, each a dict of field (or dynamic key) to value.
        version: What ``get_server_version`` answers.
        partitions: What ``list_partitions`` answers.
        properties: The collection's properties.
        indexes: The app's own indexes by field, as ``describe_index`` gives them.
    """

    def __init__(
        self,
        schema: Any,
        rows: list[dict[str, Any]],
        *,
        name: str = "kb",
        version: str = "v2.6.4",
        partitions: tuple[str, ...] = ("_default",),
        properties: dict[str, str] | None = None,
        indexes: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        data = schema.to_dict()
        self.name = name
        self.fields: list[dict[str, Any]] = data["fields"]
        self.dynamic = bool(data.get("enable_dynamic_field"))
        self.auto_id = bool(data.get("auto_id"))
        self.pk = next(f["name"] for f in self.fields if f.get("is_primary"))
        self.rows: dict[Any, dict[str, Any]] = {row[self.pk]: dict(row) for row in rows}
        self.version = version
        self.partitions = list(partitions)
        self.properties = dict(properties or {})
        self.indexes: dict[str, dict[str, Any]] = dict(indexes or {})
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []
        self.requests: list[Any] = []  # pymilvus's UpsertRequest for each upsert
        self.vanish_before_write: set[Any] = set()  # keys the app deletes between our check and our write
        self.refuse_vector_fields = False  # a server that can't add a vector field
        self.fail_properties_once = False  # the run is killed while storing the spec

    # ---------------------------------------------------------------- helpers
    def _record(self, method: str, *args: Any, **kwargs: Any) -> None:
        self.calls.append((method, args, copy.deepcopy(kwargs)))

    def calls_to(self, method: str) -> list[tuple[tuple[Any, ...], dict[str, Any]]]:
        return [(args, kwargs) for name, args, kwargs in self.calls if name == method]

    def writes(self) -> list[str]:
        return [name for name, _, _ in self.calls if name in WRITES]

    def field(self, name: str) -> dict[str, Any] | None:
        return next((f for f in self.fields if f["name"] == name), None)

    def _check(self, collection: str) -> None:
        if collection != self.name:
            raise MilvusException(code=100, message=f"collection not found[collection={collection}]")

    def _output(self, row: dict[str, Any], output_fields: list[str] | None) -> dict[str, Any]:
        out = {self.pk: row[self.pk]}
        for name in output_fields or []:
            if self.field(name) is not None:
                out[name] = copy.deepcopy(row.get(name))
            elif self.dynamic and name in row:  # a dynamic key is returned where a row has it
                out[name] = copy.deepcopy(row[name])
            elif not self.dynamic:
                raise MilvusException(code=1100, message=f"field {name} not exist")
        return out

    def _matching(self, expression: str) -> list[dict[str, Any]]:
        pk = re.escape(self.pk)
        keys = sorted(self.rows)
        if expression == "":
            chosen = keys
        elif re.fullmatch(rf'{pk} != ""', expression):
            chosen = [k for k in keys if k != ""]
        elif match := re.fullmatch(rf"{pk} <= (-?\d+)", expression):
            chosen = [k for k in keys if k <= int(match[1])]
        elif match := re.fullmatch(rf"{pk} > (.+)", expression):
            last = json.loads(match[1])
            chosen = [k for k in keys if k > last]
        elif match := re.fullmatch(rf"{pk} in \[(.*)\]", expression):
            wanted = set(json.loads(f"[{match[1]}]"))
            chosen = [k for k in keys if k in wanted]
        else:
            raise AssertionError(f"unexpected filter {expression!r}")
        return [self.rows[k] for k in chosen]

    # ----------------------------------------------------- MilvusClient's calls
    def has_collection(self, collection: str, **kwargs: Any) -> bool:
        self._record("has_collection", collection, **kwargs)
        return collection == self.name

    def describe_collection(self, collection: str, **kwargs: Any) -> dict[str, Any]:
        self._record("describe_collection", collection, **kwargs)
        self._check(collection)
        return {
            "collection_name": self.name,
            "auto_id": self.auto_id,
            "enable_dynamic_field": self.dynamic,
            "fields": copy.deepcopy(self.fields),
            "properties": dict(self.properties),
            "num_partitions": len(self.partitions),
        }

    def get_server_version(self, **kwargs: Any) -> str:
        self._record("get_server_version", **kwargs)
        return self.version

    def list_partitions(self, collection: str, **kwargs: Any) -> list[str]:
        self._record("list_partitions", collection, **kwargs)
        return list(self.partitions)

    def add_collection_field(
        self, collection: str, field_name: str, data_type: DataType, desc: str = "", **kwargs: Any
    ) -> None:
        self._record("add_collection_field", collection, field_name, data_type, desc=desc, **kwargs)
        self._check(collection)
        is_vector = "VECTOR" in data_type.name
        if is_vector and not kwargs.get("nullable"):
            raise ParamError(message="Adding vector field to existing collection requires nullable=True")
        if not kwargs.get("nullable") and kwargs.get("default_value") is None:
            raise MilvusException(code=1100, message="added field must be nullable or have a default value")
        if is_vector and self.refuse_vector_fields:
            raise MilvusException(code=1100, message="not support to add vector field")
        if self.field(field_name) is not None:
            raise MilvusException(code=1100, message=f"duplicate field name {field_name}")
        extra = {k: v for k, v in kwargs.items() if k in ("nullable", "default_value")}
        self.fields.append(MilvusClient.create_field_schema(field_name, data_type, desc, **extra).to_dict())
        for row in self.rows.values():
            row[field_name] = None

    def list_indexes(self, collection: str, field_name: str = "", **kwargs: Any) -> list[str]:
        self._record("list_indexes", collection, field_name=field_name, **kwargs)
        return [i["index_name"] for f, i in self.indexes.items() if not field_name or f == field_name]

    def create_index(self, collection: str, index_params: Any, **kwargs: Any) -> None:
        configs = [param.to_dict() for param in index_params]
        self._record("create_index", collection, configs, **kwargs)
        for config in configs:
            field = self.field(config["field_name"])
            assert field is not None, config
            self.indexes[config["field_name"]] = {**config, "index_name": config["index_name"] or field["name"]}

    def describe_index(self, collection: str, index_name: str, **kwargs: Any) -> dict[str, Any]:
        self._record("describe_index", collection, index_name, **kwargs)
        return dict(self.indexes[index_name])

    def alter_collection_properties(self, collection: str, properties: dict[str, Any], **kwargs: Any) -> None:
        self._record("alter_collection_properties", collection, properties, **kwargs)
        if self.fail_properties_once:
            self.fail_properties_once = False
            raise KeyboardInterrupt  # the run is killed here
        self.properties.update({key: str(value) for key, value in properties.items()})

    def load_collection(self, collection: str, **kwargs: Any) -> None:
        self._record("load_collection", collection, **kwargs)
        self._check(collection)

    def flush(self, collection: str, **kwargs: Any) -> None:
        self._record("flush", collection, **kwargs)

    def query(
        self, collection: str, filter: str = "", output_fields: list[str] | None = None, **kwargs: Any
    ) -> list[dict[str, Any]]:
        self._record("query", collection, filter=filter, output_fields=output_fields, **kwargs)
        self._check(collection)
        if output_fields == ["count(*)"]:
            return [{"count(*)": len(self._matching(filter))}]
        rows = [self._output(row, output_fields) for row in self._matching(filter)]
        limit = kwargs.get("limit")
        return rows[:limit] if limit is not None else rows

    def get(self, collection: str, ids: list[Any], output_fields: list[str] | None = None, **kwargs: Any) -> list:
        self._record("get", collection, ids=list(ids), output_fields=output_fields, **kwargs)
        return [self._output(self.rows[key], output_fields) for key in ids if key in self.rows]

    def upsert(self, collection: str, data: list[dict[str, Any]], **kwargs: Any) -> dict[str, Any]:
        self._record("upsert", collection, data, **kwargs)
        self._check(collection)
        if not kwargs.get("partial_update"):
            raise AssertionError("an upsert without partial_update would replace the app's whole rows")
        # pymilvus 3.0.2's own request for these rows: raises where the real client would.
        self.requests.append(
            Prepare.row_upsert_param(
                collection, data, "", self.fields, enable_dynamic=self.dynamic, partial_update=True
            )
        )
        for key in self.vanish_before_write:
            self.rows.pop(key, None)
        self.vanish_before_write = set()
        missing = [row for row in data if row[self.pk] not in self.rows]
        required = [
            f["name"]
            for f in self.fields
            if not f.get("is_primary") and not f.get("nullable") and f.get("default_value") is None
        ]
        for row in missing:  # inserted: Milvus refuses the whole request when a required field is missing
            for name in required:
                if name not in row:
                    raise MilvusException(
                        code=1100,
                        message=f"Insert missed an field `{name}` to collection without set nullable==true or "
                        "set default_value",
                    )
        for row in data:
            stored = self.rows.setdefault(row[self.pk], {f["name"]: None for f in self.fields})
            stored.update(copy.deepcopy(row))
        return {"upsert_count": len(data)}

    def search(self, collection: str, data: list[dict[int, float]], anns_field: str, **kwargs: Any) -> list:
        self._record("search", collection, data=data, anns_field=anns_field, **kwargs)
        [query] = data
        scored = []
        for row in self.rows.values():
            stored = row.get(anns_field)
            if stored:  # a null vector is skipped
                score = sum(float(w) * float(stored.get(i, 0.0)) for i, w in query.items())
                scored.append((score, row))
        scored.sort(key=lambda item: -item[0])
        return [
            [
                {  # the entity holds the output fields only, as Milvus Lite answers
                    self.pk: row[self.pk],
                    "distance": score,
                    "entity": {k: v for k, v in self._output(row, kwargs["output_fields"]).items() if k != self.pk},
                }
                for score, row in scored[: kwargs["limit"]]
            ]
        ]

    def close(self) -> None:
        self._record("close")
