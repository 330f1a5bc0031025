"""Scale-out: a multi-host logdir priced file by file, locally and as tasks on a real local Dask
cluster, one host's file read by the workers from a local S3-compatible server (127.0.0.1 only)."""
from __future__ import annotations

import socket
from pathlib import Path

import pytest

from traceflops import api, cli
from traceflops.testing import synthetic

HOSTS = 3


@pytest.fixture(scope="module")
def logdir(tmp_path_factory):
    run = tmp_path_factory.mktemp("logdir") / "plugins" / "profile" / "run"
    run.mkdir(parents=True)
    for k in range(HOSTS):
        data = synthetic.synthetic_trace(6000, seed=k, hostname=f"worker-{k}", noise=0.1 + 0.2 * k)
        (run / f"worker-{k}.xplane.pb").write_bytes(data)
    return run


def _csv(result, out: Path, name: str) -> str:
    result.write(out)
    return (out / name).read_text()


def test_multi_host_local_matches_one_process(logdir, tmp_path):
    """Files priced in worker processes give the tables of the whole trace parsed in one process."""
    from traceflops.join import join
    from traceflops.trace import load_trace
    result = api.analyze(logdir)
    whole = join(load_trace(logdir), None, None, {}, str(logdir))
    assert result.ops.equals(whole.ops)
    hosts = result.hosts
    assert list(hosts["host"]) == [f"worker-{k}" for k in range(HOSTS)]
    assert result.summary["straggler"]["host"] == hosts.loc[hosts["median_step_time_us"].idxmax(), "host"]
    assert result.summary["events"] > HOSTS * 6000
    text = _csv(result, tmp_path, "hosts.csv")
    assert text.splitlines()[0].startswith("host,steps,median_step_time_us,step_time_skew,flops_per_step")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def s3(logdir):
    """A moto S3 server on 127.0.0.1 holding the last host's file; yields (url, storage options)."""
    import boto3
    from moto import server as moto_server
    port = _free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    options = {"key": "testing", "secret": "testing",
               "client_kwargs": {"endpoint_url": endpoint, "region_name": "us-east-1"}}
    try:
        client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="testing",
                              aws_secret_access_key="testing", region_name="us-east-1")
        client.create_bucket(Bucket="traces")
        name = f"worker-{HOSTS - 1}.xplane.pb"
        client.put_object(Bucket="traces", Key=f"logdir/run/{name}", Body=(logdir / name).read_bytes())
        yield f"s3://traces/logdir/run/{name}", options
    finally:
        server.stop()


@pytest.fixture(scope="module")
def cluster():
    import distributed
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None, silence_logs=40) as local:
        yield local.scheduler_address


@pytest.mark.dask
def test_dask_cluster_with_s3_file_matches_local_run(logdir, s3, cluster, tmp_path):
    url, options = s3
    files = [str(logdir / f"worker-{k}.xplane.pb") for k in range(HOSTS - 1)]
    local = api.analyze(files + [str(logdir / f"worker-{HOSTS - 1}.xplane.pb")])
    remote = api.analyze(files + [url], scheduler=cluster, storage_options=options)
    assert remote.summary["trace_files"][-1] == url
    for name in ("ops.csv", "hosts.csv"):
        assert _csv(remote, tmp_path / "remote", name) == _csv(local, tmp_path / "local", name)
    assert remote.summary["straggler"] == local.summary["straggler"]
    assert remote.summary["straggler"]["host"].startswith("worker-")


@pytest.mark.dask
def test_cli_scheduler_names_the_straggler(logdir, cluster, tmp_path, capsys):
    out = tmp_path / "out"
    assert cli.main(["analyze", str(logdir), "--scheduler", cluster, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    local = api.analyze(logdir)
    assert (out / "ops.csv").read_text() == _csv(local, tmp_path / "local", "ops.csv")
    assert (out / "hosts.csv").exists()
    assert f"straggler                 {local.summary['straggler']['host']}" in printed


@pytest.mark.dask
def test_unreachable_scheduler_is_one_line(logdir, capsys, monkeypatch):
    from traceflops import scale
    monkeypatch.setattr(scale, "CONNECT_TIMEOUT_S", 2)
    port = _free_port()
    code = cli.main(["analyze", str(logdir), "--scheduler", f"tcp://127.0.0.1:{port}"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "Dask scheduler" in err[0]


def test_hosts_table_mfu_and_report_section(logdir, tmp_path):
    ceilings = {"device": "CPU:0", "peak_gflops_per_s": {"float32": 100.0}, "bandwidth_gbytes_per_s": 30.0}
    result = api.analyze(logdir, ceilings=ceilings)
    hosts = result.hosts
    assert (hosts["mfu"] - hosts["gflops_per_s"] / 100.0).abs().max() < 1e-12
    assert abs(float(hosts["step_time_skew"].abs().min())) < 1e-12  # the median host itself
    result.write(tmp_path)
    page = (tmp_path / "report.html").read_text()
    assert 'id="hosts"' in page and f"Straggler: {result.summary['straggler']['host']}" in page


def test_single_host_has_no_hosts_table(logdir):
    result = api.analyze(logdir / "worker-0.xplane.pb")
    assert result.hosts is None and "straggler" not in result.summary


@pytest.mark.dask
def test_bad_s3_objects_are_one_line_errors(s3, tmp_path):
    from traceflops.errors import TraceError
    url, options = s3
    bucket = url.rsplit("/", 1)[0]
    with pytest.raises(TraceError, match=r"s3://traces/logdir/run/missing\.xplane\.pb: cannot read"):
        api.analyze(f"{bucket}/missing.xplane.pb", storage_options=options)
    import boto3
    client = boto3.client("s3", endpoint_url=options["client_kwargs"]["endpoint_url"], aws_access_key_id="testing",
                          aws_secret_access_key="testing", region_name="us-east-1")
    client.put_object(Bucket="traces", Key="junk/run/bad.xplane.pb", Body=b"\x0a\x05junk!")
    with pytest.raises(TraceError, match=r"^s3://traces/junk/run/bad\.xplane\.pb: "):
        api.analyze("s3://traces/junk", storage_options=options)
