"""collector.tfevent: TensorBoard event files (written by a real writer, tensorboardX) → metric
records, and the TensorFlowEvent collector end to end through `katib.py --fake run`."""
from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from tensorboardX import SummaryWriter
from tensorboardX.proto import summary_pb2, tensor_pb2

from collector.tfevent import EventFileError, crc32c, masked_crc, parse_directory, parse_event_file, records

ROOT = Path(__file__).resolve().parent.parent


def write_scalars(logdir: Path, scalars: dict[str, list[float]], *, walltime: float = 1_600_000_000.0) -> None:
    writer = SummaryWriter(str(logdir))
    for tag, values in scalars.items():
        for step, value in enumerate(values):
            writer.add_scalar(tag, value, step, walltime=walltime + step)
    writer.close()


def event_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.name.startswith("events.out.tfevents"))


def test_crc32c_check_value():
    assert crc32c(b"123456789") == 0xE3069283  # the CRC-32C (Castagnoli) check value
    assert masked_crc(b"") == ((0 >> 15 | 0 << 17) + 0xA282EAD8) & 0xFFFFFFFF


def test_scalars_written_by_tensorboardx(tmp_path):
    write_scalars(tmp_path, {"accuracy": [0.5, 0.625, 0.75], "loss": [0.25]})
    logs = parse_directory(tmp_path, ["accuracy", "loss"])
    assert [(log.name, log.value) for log in logs] == [
        ("accuracy", "0.5"), ("accuracy", "0.625"), ("accuracy", "0.75"), ("loss", "0.25")]
    assert logs[0].timestamp == "2020-09-13T12:26:40.000000Z"
    assert logs[2].timestamp == "2020-09-13T12:26:42.000000Z"


def test_float32_values_are_shown_shortest():
    from collector.tfevent import _format
    assert _format(0.1) == "0.1"        # stored as float32 0.100000001490116...
    assert _format(1 / 3) == "0.33333334"
    assert _format(123456789.0) == "1.2345679e+08"


def test_prefix_and_subdirectory_rules(tmp_path):
    """Upstream's rule: a metric with a `/` is matched against `<parent dir>/<tag>`; otherwise
    the tag alone; a tag matches when it starts with the metric name."""
    write_scalars(tmp_path / "train", {"accuracy": [0.5], "accuracy_top5": [0.875]})
    write_scalars(tmp_path / "test", {"accuracy": [0.25]})
    logs = parse_directory(tmp_path, ["train/accuracy", "test/accuracy"])
    assert sorted((log.name, log.value) for log in logs) == [
        ("test/accuracy", "0.25"), ("train/accuracy", "0.5"), ("train/accuracy", "0.875")]
    plain = parse_directory(tmp_path, ["accuracy"])
    assert sorted(log.value for log in plain) == ["0.25", "0.5", "0.875"]


def _tensor_event_file(logdir: Path, values: list[tuple[str, tensor_pb2.TensorProto]]) -> None:
    """Scalars in TF2's form (a `tensor` instead of `simple_value`), through tensorboardX's
    own event writer."""
    writer = SummaryWriter(str(logdir))
    summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, tensor=tensor)
                                         for tag, tensor in values])
    writer._get_file_writer().add_summary(summary, 0, walltime=1_600_000_000.0)
    writer.close()


def test_tf2_tensor_scalars(tmp_path):
    _tensor_event_file(tmp_path, [
        ("float_val", tensor_pb2.TensorProto(dtype=1, float_val=[0.5])),
        ("double_val", tensor_pb2.TensorProto(dtype=2, double_val=[0.1])),
        ("content", tensor_pb2.TensorProto(dtype=1, tensor_content=struct.pack("<f", 0.75))),
        ("content_double", tensor_pb2.TensorProto(dtype=2, tensor_content=struct.pack("<d", 0.2))),
        ("string", tensor_pb2.TensorProto(dtype=7, string_val=[b"not a number"])),
    ])
    logs = parse_directory(tmp_path, ["float_val", "double_val", "content", "string"])
    # "content" also takes "content_double" (prefix rule); the string tensor is no scalar
    assert [(log.name, log.value) for log in logs] == [
        ("float_val", "0.5"), ("double_val", "0.1"), ("content", "0.75"), ("content", "0.2")]


def test_truncated_last_record_keeps_the_earlier_ones(tmp_path):
    write_scalars(tmp_path, {"accuracy": [0.5, 0.625, 0.75]})
    [path] = event_files(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[:-3])  # the writer was cut mid-record
    assert [log.value for log in parse_event_file(path, ["accuracy"])] == ["0.5", "0.625"]


def test_damaged_record_is_detected(tmp_path):
    write_scalars(tmp_path, {"accuracy": [0.5, 0.625]})
    [path] = event_files(tmp_path)
    data = bytearray(path.read_bytes())
    data[-6] ^= 0xFF  # a byte of the last record's payload
    path.write_bytes(bytes(data))
    assert [log.value for log in parse_event_file(path, ["accuracy"])] == ["0.5"]
    with pytest.raises(EventFileError, match="checksum"):
        list(records(bytes(data)))


def test_other_files_are_skipped(tmp_path):
    write_scalars(tmp_path, {"accuracy": [0.5]})
    (tmp_path / "1234.pid").write_text("completed\n")
    (tmp_path / "empty").write_bytes(b"")
    (tmp_path / "noise").write_bytes(b"\xff" * 100)
    assert [log.value for log in parse_directory(tmp_path, ["accuracy"])] == ["0.5"]
    assert parse_directory(tmp_path / "missing", ["accuracy"]) == []
    assert parse_directory("", ["accuracy"]) == []


TRAINER = """
import sys
from tensorboardX import SummaryWriter
x = int(sys.argv[1])
writer = SummaryWriter(sys.argv[2])
for step in range(3):
    writer.add_scalar("accuracy", x / 100 - (2 - step) * 0.01, step)
    writer.add_scalar("loss", 1 - x / 100, step)
writer.close()
"""


def test_tensorflow_event_trials_run_locally(tmp_path):
    """An experiment whose trials write TensorBoard event files into the collector's directory
    succeeds with `katib.py --fake run`, each trial's observation being its own last value."""
    trainer = tmp_path / "trainer.py"
    trainer.write_text(TRAINER)
    logdir = tmp_path / "tfevent"
    template = {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "{{.Trial}}", "namespace": "{{.NameSpace}}"},
        "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{
            "name": "training", "image": "none",
            "command": ["python3", str(trainer), "{{range .HyperParameters}}{{.Value}}{{end}}", str(logdir)],
        }]}}},
    }
    experiment = {
        "apiVersion": "kubeflow.org/v1alpha3", "kind": "Experiment",
        "metadata": {"name": "tfevent", "namespace": "default"},
        "spec": {
            "objective": {"type": "maximize", "objectiveMetricName": "accuracy", "additionalMetricNames": ["loss"]},
            "algorithm": {"algorithmName": "grid"},
            "parallelTrialCount": 2, "maxTrialCount": 3, "maxFailedTrialCount": 0,
            "parameters": [{"name": "x", "parameterType": "int", "feasibleSpace": {"min": "50", "max": "53"}}],
            "metricsCollectorSpec": {"collector": {"kind": "TensorFlowEvent"},
                                     "source": {"fileSystemPath": {"kind": "Directory", "path": str(logdir)}}},
            "trialTemplate": {"goTemplate": {"rawTemplate": yaml.safe_dump(template)}},
        },
    }
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(experiment))
    done = subprocess.run([sys.executable, "katib.py", "--fake", "run", str(path), "--db", str(tmp_path / "k.db"),
                           "-o", "json", "-q"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    [result] = json.loads(done.stdout)
    observed = {}
    for trial in result["trials"]:
        x = int(trial["spec"]["parameterAssignments"][0]["value"])
        [metric] = [m for m in trial["status"]["observation"]["metrics"] if m["name"] == "accuracy"]
        observed[x] = float(metric["value"])
    assert observed == {x: pytest.approx(x / 100, abs=1e-6) for x in (50, 51, 52)}
    assert result["experiment"]["status"]["currentOptimalTrial"]["observation"]["metrics"][0]["value"] \
        == pytest.approx(0.52, abs=1e-6)
