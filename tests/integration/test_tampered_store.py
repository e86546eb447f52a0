"""A model store rewritten behind driftloop's back runs nothing: every tampering the MLflow artifact store
allows is refused in one line, and a marker file the tampered model would create never appears."""

from __future__ import annotations

import io
import json
import pickle
import zipfile
from pathlib import Path

import pytest
import yaml

from driftloop import cli, model_files
from driftloop.errors import RegistryError
from driftloop.registry import CHAMPION, Registry
from tests.conftest import register


class _RunsACommand:
    """What a crafted pickle holds: unpickling it runs a shell command."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        import os

        return os.system, (self.command,)


def _skops_running(command: str) -> bytes:
    """A skops file whose only node calls ``posix.system(command)`` when it is built (skops's loss
    loader calls its constructor with the stored arguments), once a loader trusts ``posix.system``."""
    argument = {"__class__": "str", "__module__": "builtins", "__loader__": "JsonNode", "content": json.dumps(command),
                "is_json": True}
    schema = {
        "__class__": "system", "__module__": "posix", "__loader__": "LossNode",
        "__reduce__": {"args": {"__class__": "tuple", "__module__": "builtins", "__loader__": "TupleNode", "content": [argument]}},
        "content": {"__class__": "dict", "__module__": "builtins", "__loader__": "DictNode", "content": {},
                    "key_types": {"__class__": "list", "__module__": "builtins", "__loader__": "ListNode", "content": []}},
        "protocol": 2, "_skops_version": "0.16.0",
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("schema.json", json.dumps(schema))
    return buffer.getvalue()


@pytest.fixture
def champion_files(cfg, candidate) -> Path:
    """The champion's model folder in the local artifact store (what anyone with write access to it can edit)."""
    registry = Registry(cfg.registry)
    version = register(registry, candidate, CHAMPION)
    source = registry.client.get_model_version_download_uri(registry.name, version)
    return Path(source.removeprefix("file://"))


def _edit_mlmodel(folder: Path, edit) -> None:
    mlmodel = yaml.safe_load((folder / "MLmodel").read_text())
    edit(mlmodel["flavors"]["sklearn"])
    (folder / "MLmodel").write_text(yaml.safe_dump(mlmodel))


def _refused_in_one_line(cfg, marker: Path, *expected: str) -> str:
    from driftloop import registry as registry_module

    registry_module._LOADED.clear()  # as a new process: nothing kept from the registration
    with pytest.raises(RegistryError) as refused:
        Registry(cfg.registry).load(CHAMPION)
    message = str(refused.value)
    assert "\n" not in message
    assert not marker.exists(), "the tampered model ran its command"
    for part in expected:
        assert part in message
    return message


def test_the_crafted_files_do_run_code_when_loaded_as_mlflow_would(tmp_path):
    """The attacks below are real: loaded the way the MLmodel file asks, each creates its marker."""
    from skops.io import loads

    marker = tmp_path / "skops-ran"
    loads(_skops_running(f"touch {marker}"), trusted=["posix.system"])
    assert marker.exists()
    marker = tmp_path / "pickle-ran"
    pickle.loads(pickle.dumps(_RunsACommand(f"touch {marker}")))
    assert marker.exists()


def test_an_mlmodel_switched_to_pickle_is_refused_without_unpickling(cfg, champion_files, tmp_path):
    marker = tmp_path / "ran"
    (champion_files / "model.pkl").write_bytes(pickle.dumps(_RunsACommand(f"touch {marker}")))
    _edit_mlmodel(champion_files, lambda flavor: flavor.update(serialization_format="pickle", pickled_model="model.pkl"))
    _refused_in_one_line(cfg, marker, "refusing to load churn-classifier v1 (champion)", "serialization_format 'pickle'",
                         "registered as 'skops'", "restore them from a backup")


def test_a_type_added_to_the_trusted_list_is_refused_before_the_file_is_read(cfg, champion_files, tmp_path):
    marker = tmp_path / "ran"
    (champion_files / "model.skops").write_bytes(_skops_running(f"touch {marker}"))
    _edit_mlmodel(champion_files, lambda flavor: flavor["skops_trusted_types"].append("posix.system"))
    _refused_in_one_line(cfg, marker, "trusts 1 type(s) not trusted at registration (posix.system)")


def test_a_replaced_model_file_is_refused_by_its_hash(cfg, champion_files, tmp_path):
    marker = tmp_path / "ran"
    (champion_files / "model.skops").write_bytes(_skops_running(f"touch {marker}"))
    _refused_in_one_line(cfg, marker, "model.skops is not the file registered")


def test_a_replaced_drift_profile_is_refused(cfg, candidate, tmp_path):
    registry = Registry(cfg.registry)
    register(registry, candidate, CHAMPION)
    run = registry.by_alias(CHAMPION).run_id
    profile = next(Path(cfg.registry.artifact_root).rglob(f"{run}/artifacts/drift_reference.npz"))
    profile.write_bytes(profile.read_bytes() + b"\0")
    _refused_in_one_line(cfg, tmp_path / "never", "drift_reference.npz is not the file registered")


def test_a_version_without_a_pin_is_refused_until_a_person_pins_it(cfg, config_path, candidate, capsys):
    registry = Registry(cfg.registry)
    version = register(registry, candidate, CHAMPION)
    registry.client.delete_model_version_tag(registry.name, version, model_files.PIN_TAG)  # as a version from before pins
    message = _refused_in_one_line(cfg, Path("/nonexistent"), f"has no {model_files.PIN_TAG} tag", f"driftloop pin {version}")
    assert message.startswith("churn-classifier v1 (champion)")
    assert cli.main(["--config", str(config_path), "pin", version, "--reason", "checked the file by hand", "--reviewer", "dana"]) == 0
    assert "pinned churn-classifier v1" in capsys.readouterr().out
    assert Registry(cfg.registry).load(CHAMPION).ref.version == version
    assert Registry(cfg.registry).history()[-1].action == "pin"


def test_a_pickled_version_cannot_be_pinned(cfg, config_path, champion_files, capsys):
    registry = Registry(cfg.registry)
    registry.client.delete_model_version_tag(registry.name, "1", model_files.PIN_TAG)
    _edit_mlmodel(champion_files, lambda flavor: flavor.update(serialization_format="pickle", pickled_model="model.pkl"))
    (champion_files / "model.pkl").write_bytes(b"not even read")
    assert cli.main(["--config", str(config_path), "pin", "1", "--reason", "r", "--reviewer", "dana"]) == 2
    assert "only skops files are pinned" in capsys.readouterr().err


def test_mlflow_itself_refuses_to_unpickle_in_a_driftloop_process():
    import os

    import driftloop.registry  # noqa: F401  (the switch is set where mlflow is imported)

    assert os.environ["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"] == "false"
