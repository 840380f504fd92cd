"""The policy management service's application configuration, as GET and PUT `/configuration` show it: the
O-RAN SC service's JSON (`{"config": {"ric": [{"name", "baseUrl", "managedElementIds"}], ...}}`) for the one
Near-RT RIC this rApp manages. Its name and A1 endpoint come from the rApp's settings and cannot be changed
here; the managed element ids (O1 identities the RIC serves, used by `/rics/ric?managed_element_id=`) and
any other top-level entries of `config` can, and are kept in the work folder over restarts."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import structlog

from rapp.a1.policies import PolicyError

log = structlog.get_logger(__name__)
FILE = "pms-configuration.json"


class Configuration:
    """The configuration of one Near-RT RIC entry, kept in `work_dir/FILE`."""

    def __init__(self, work_dir: Path, ric_id: str, base_url: str, managed_element_ids: tuple[str, ...]) -> None:
        self.ric_id = ric_id
        self.base_url = base_url
        self._file = work_dir / FILE
        self.managed_element_ids = list(managed_element_ids)
        self._extra: dict[str, Any] = {}
        if self._file.exists():
            kept = json.loads(self._file.read_text())
            self.managed_element_ids = kept["managed_element_ids"]
            self._extra = kept["extra"]

    def document(self) -> dict[str, Any]:
        """The configuration as the O-RAN SC service's JSON."""
        ric = {"name": self.ric_id, "baseUrl": self.base_url, "managedElementIds": self.managed_element_ids}
        return {"config": {**self._extra, "ric": [ric]}}

    def replace(self, document: Any) -> None:
        """Adopt a new configuration; one that names another RIC or endpoint is a 400 naming why."""
        ids = self._check(document)
        self._extra = {k: v for k, v in document["config"].items() if k != "ric"}
        self.managed_element_ids = ids
        self._file.parent.mkdir(parents=True, exist_ok=True)
        temporary = self._file.with_suffix(".tmp")
        temporary.write_text(json.dumps({"managed_element_ids": ids, "extra": self._extra}))
        os.replace(temporary, self._file)
        log.info("a1_configuration_replaced", managed_element_ids=len(ids))

    def _check(self, document: Any) -> list[str]:
        config = document.get("config") if isinstance(document, dict) else None
        if not isinstance(config, dict):
            raise PolicyError(400, "body: an object with a `config` object is expected")
        rics = config.get("ric")
        if not isinstance(rics, list) or len(rics) != 1 or not isinstance(rics[0], dict):
            raise PolicyError(400, f"config.ric: one entry is expected, for the Near-RT RIC {self.ric_id!r}")
        ric = rics[0]
        if ric.get("name") != self.ric_id:
            raise PolicyError(400, f"config.ric[0].name: this rApp manages {self.ric_id!r} (RANOMALY_RAPP_RIC_ID)")
        if ric.get("baseUrl", self.base_url) != self.base_url:
            raise PolicyError(400, "config.ric[0].baseUrl: the A1 endpoint is set by RANOMALY_RAPP_A1_BASE_URL")
        ids = ric.get("managedElementIds", [])
        if not isinstance(ids, list) or not all(isinstance(i, str) and 0 < len(i) <= 256 for i in ids):
            raise PolicyError(400, "config.ric[0].managedElementIds: a list of non-empty strings is expected")
        if len(ids) > 10_000:
            raise PolicyError(400, "config.ric[0].managedElementIds: at most 10000")
        return list(dict.fromkeys(ids))
