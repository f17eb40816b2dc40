"""Settings of the engines that take a run past one machine (``[graph]``, ``[executor]``,
``[retrieval.milvus]``).

Switching backend is a configuration change only: the commands stay the same, and each
engine has a local mode (SQLite, the in-process executor, Milvus Lite) that is the default.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["ExecutorSettings", "GraphSettings", "MilvusSettings"]


class GraphSettings(BaseModel):
    """Where the knowledge graph lives (``[graph]``)."""

    model_config = ConfigDict(extra="forbid")

    backend: Literal["sqlite", "postgresql"] = Field(
        default="sqlite",
        description="sqlite: one file in the workspace (kg/graph.sqlite); postgresql: a "
        "PostgreSQL database named by dsn, for graphs larger than one machine's memory.",
    )
    dsn: str | None = Field(
        default=None,
        description="libpq connection string for postgresql, without the password "
        "(e.g. 'postgresql://kg@db.example:5432/medresearcher' or 'host=/run/postgresql "
        "dbname=medresearcher').",
    )
    password_env: str | None = Field(
        default=None, description="Environment variable holding the database password."
    )
    schema_name: str = Field(
        default="medresearcher",
        description="PostgreSQL schema holding the tables, so several graphs share a database.",
    )
    batch_size: int = Field(
        default=50_000, ge=1, description="Records per COPY batch when importing into PostgreSQL."
    )


class ExecutorSettings(BaseModel):
    """How batch stages run (``[executor]``; ``--executor`` overrides ``kind``)."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["local", "ray"] = Field(
        default="local",
        description="local: this process (asyncio for model calls); ray: shards of work as "
        "Ray tasks on a cluster, merged by id into the same files.",
    )
    ray_address: str | None = Field(
        default=None,
        description="Ray cluster to join ('auto' for the one this machine belongs to); "
        "unset starts a local Ray instance.",
    )
    shard_size: int = Field(default=64, ge=1, description="Items per Ray task.")
    num_cpus: int | None = Field(
        default=None, ge=1, description="CPUs for a local Ray instance (all by default)."
    )


class MilvusSettings(BaseModel):
    """The corpus on Milvus (``[retrieval.milvus]``, used when retrieval.backend = milvus)."""

    model_config = ConfigDict(extra="forbid")

    uri: str | None = Field(
        default=None,
        description="A local file for Milvus Lite (default: index/milvus.db in the "
        "workspace) or a server/cluster URL such as http://milvus.example:19530.",
    )
    token_env: str | None = Field(
        default=None, description="Environment variable holding the Milvus token, if any."
    )
    collection: str = Field(default="medresearcher_docs", description="Collection name.")
    batch_size: int = Field(default=1000, ge=1, description="Documents per insert batch.")
    text_fields: list[str] = Field(
        default_factory=lambda: ["names", "genes", "phenotypes"],
        description="Document fields (Document.fields) that get their own BM25 field besides "
        "the body, so [retrieval] field_weights apply as in the embedded index; every field "
        "named in field_weights or entity_field_weights is added at build time. Fixed when "
        "the collection is created.",
    )
    dense_index: Literal["FLAT", "HNSW"] = Field(
        default="FLAT",
        description="Milvus index of the dense vectors: FLAT is exact cosine, like the "
        "embedded index; HNSW is approximate, for collections of many millions.",
    )
