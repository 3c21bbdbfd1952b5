"""The multi-host recipe of docs/scale-out.md over a real, non-loopback network.

Two network namespaces on this machine stand for two hosts, joined by a veth pair on the
benchmarking range 198.18.0.0/15 (RFC 2544): the *store host* runs the job with ``cs`` role
``algorithm`` (store server + algorithm, bound on its veth address, with a bearer token), the
*runner host* runs the same script with role ``runner`` against that address. Each namespace
has its own loopback, so nothing reaches the other side through 127.0.0.1.

A third test runs the Ray variant of the recipe: a Ray head node (no CPUs) on the store host,
a worker node with the ``runner_slot`` resource on the runner host, both sharing Ray's own auth
token, and a job of the ``ray`` strategy driven from the store host whose runner actors are
placed on the runner host and reach the store over the veth.

Needs root and iproute2 (``ip netns``, ``ip link``), as CI has. Where they are missing the test
fails saying so: the recipe is then untested, which must not pass as a skip. The namespaces
(and with them the veth pair) are deleted after the test, also when it fails.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

STORE_IP, RUNNER_IP = "198.18.0.1", "198.18.0.2"
PORT = 4747
TOKEN = "netns-test-token"
AGL = str(Path(sys.executable).with_name("agl"))
RAY = str(Path(sys.executable).with_name("ray"))
PROBE = f"""
import socket
for name, host in (("veth", "{STORE_IP}"), ("loopback", "127.0.0.1")):
    with socket.socket() as s:
        s.settimeout(5)
        code = s.connect_ex((host, {PORT}))
        print(name, code if code == 0 else "refused")
"""

JOB = """
import sys

from agentlightning_core import Algorithm, ClientServerExecutionStrategy, EnqueueRequest, Trainer
from agentlightning_core.testing.agents import double_agent


class EnqueueAndReport(Algorithm):
    async def run(self, train_dataset=None, val_dataset=None):
        store = self.get_store()
        rollouts = await store.enqueue_many_rollouts([EnqueueRequest(input=t) for t in train_dataset])
        await store.wait_for_rollouts([r.rollout_id for r in rollouts], timeout=120)
        for task, r in zip(train_dataset, rollouts):
            attempt = await store.get_latest_attempt(r.rollout_id)
            rollout = await store.get_rollout_by_id(r.rollout_id)
            print("result", task, rollout.status.value, attempt.worker_id, attempt.reward, flush=True)


if __name__ == "__main__":
    role, host = sys.argv[1], sys.argv[2]
    strategy = ClientServerExecutionStrategy(
        role=role, server_host=host, server_port=__PORT__, server_lost_seconds=2.0, worker_id_prefix="runner-host-b"
    )
    trainer = Trainer(algorithm=EnqueueAndReport(), strategy=strategy, n_runners=2, progress=False,
                      store={"type": "memory", "watchdog_interval": None})
    trainer.fit(double_agent, [1, 2, 3, 4, 5, 6])
    print("done", role, flush=True)
""".replace("__PORT__", str(PORT))


RAY_PORT = 6379
NODE_IP = "agentlightning.annotation.node_ip"
RAY_JOB = """
import ray

from agentlightning_core import Algorithm, EnqueueRequest, Trainer, emit_annotation, rollout


@rollout
async def node_agent(task: int) -> float:
    emit_annotation({"node_ip": ray.util.get_node_ip_address()})  # the Ray node running this actor
    return float(task) * 2


class EnqueueAndReport(Algorithm):
    async def run(self, train_dataset=None, val_dataset=None):
        store = self.get_store()
        rollouts = await store.enqueue_many_rollouts([EnqueueRequest(input=t) for t in train_dataset])
        await store.wait_for_rollouts([r.rollout_id for r in rollouts], timeout=180)
        for task, r in zip(train_dataset, rollouts):
            attempt = await store.get_latest_attempt(r.rollout_id)
            rollout = await store.get_rollout_by_id(r.rollout_id)
            spans = (await store.query_spans(r.rollout_id, "latest")).items
            nodes = ",".join(sorted({str(s.attributes[__KEY__]) for s in spans if __KEY__ in s.attributes}))
            print("result", task, rollout.status.value, attempt.worker_id, attempt.reward, nodes or "-", flush=True)


if __name__ == "__main__":
    # docs/scale-out.md, "With Ray", with two runners
    trainer = Trainer(
        algorithm=EnqueueAndReport(),
        strategy={
            "type": "ray",
            "address": "auto",
            "num_cpus": 0.25,
            "resources": {"runner_slot": 1},
            "placement": "SPREAD",
            "max_restarts": 3,
        },
        n_runners=2,
        progress=False,
    )
    trainer.fit(node_agent, [1, 2, 3, 4])
    print("store_url", trainer.strategy.store_url, flush=True)
""".replace("__KEY__", repr(NODE_IP))


@attrs.frozen
class Hosts:
    store: str
    runner: str


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)


@pytest.fixture
def hosts() -> Iterator[Hosts]:
    """Two namespaces joined by a veth pair: ``store`` has STORE_IP, ``runner`` has RUNNER_IP."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.fail(
            "The multi-host test needs root and iproute2 to create network namespaces "
            f"(euid {os.geteuid()}, ip: {shutil.which('ip')}); run it as root with iproute2 installed "
            "(apt-get install iproute2)"
        )
    tag = f"{os.getpid() % 100000}"
    made = Hosts(store=f"agl-store-{tag}", runner=f"agl-runner-{tag}")
    veth_store, veth_runner = f"aglS{tag}", f"aglR{tag}"
    steps = [
        ("netns", "add", made.store),
        ("netns", "add", made.runner),
        ("link", "add", veth_store, "type", "veth", "peer", "name", veth_runner),
        ("link", "set", veth_store, "netns", made.store),
        ("link", "set", veth_runner, "netns", made.runner),
        ("-n", made.store, "addr", "add", f"{STORE_IP}/30", "dev", veth_store),
        ("-n", made.runner, "addr", "add", f"{RUNNER_IP}/30", "dev", veth_runner),
        ("-n", made.store, "link", "set", veth_store, "up"),
        ("-n", made.runner, "link", "set", veth_runner, "up"),
        ("-n", made.store, "link", "set", "lo", "up"),
        ("-n", made.runner, "link", "set", "lo", "up"),
    ]
    try:
        for step in steps:
            result = _ip(*step)
            if result.returncode != 0:
                pytest.fail(
                    f"Cannot set up the two network namespaces: `ip {' '.join(step)}` failed: "
                    f"{result.stderr.strip()}. The multi-host test needs root and a kernel that allows "
                    "network namespaces and veth pairs."
                )
        yield made
    finally:
        for namespace in (made.store, made.runner):
            _ip("netns", "del", namespace)  # takes its end of the veth pair with it
        _ip("link", "del", veth_store)  # only there if it was never moved into a namespace
        left = _ip("netns", "list").stdout
        assert made.store not in left and made.runner not in left, left


def _in(namespace: str, *command: str) -> list[str]:
    return ["ip", "netns", "exec", namespace, *command]


def test_store_host_and_runner_host_over_a_veth_pair(hosts: Hosts, tmp_path: Path) -> None:
    job = tmp_path / "job.py"
    job.write_text(JOB)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "AGL_SERVER_TOKEN": TOKEN}
    store_host = subprocess.Popen(
        _in(hosts.store, sys.executable, str(job), "algorithm", STORE_IP),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        runner_host = subprocess.run(
            _in(hosts.runner, sys.executable, str(job), "runner", STORE_IP),
            capture_output=True,
            text=True,
            timeout=240,
            env=env,
        )
        out, err = store_host.communicate(timeout=120)
    finally:
        if store_host.poll() is None:
            store_host.kill()
            store_host.communicate()
    assert store_host.returncode == 0 and "done algorithm" in out, err
    assert runner_host.returncode == 0 and "done runner" in runner_host.stdout, runner_host.stderr
    results = sorted(line.split()[1:] for line in out.splitlines() if line.startswith("result "))
    assert [(task, status) for task, status, *_ in results] == [(str(t), "succeeded") for t in range(1, 7)]
    assert all(worker.startswith("runner-host-b-") for _, _, worker, _ in results)  # ran on the runner host
    assert [float(reward) for *_, reward in results] == [2.0 * t for t in range(1, 7)]
    assert "has no token" not in err  # the exposed store server had one


def test_a_runner_with_a_wrong_token_is_refused_over_the_network(hosts: Hosts, tmp_path: Path) -> None:
    """The store server on the veth address answers a runner host with the wrong token 401,
    and the client says so (no retries on a client error)."""
    serve = subprocess.Popen(
        _in(hosts.store, AGL, "store", "serve", "--host", STORE_IP, "--port", str(PORT)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "AGL_SERVER_TOKEN": TOKEN},
    )
    client = (
        "import anyio\n"
        "from agentlightning_core import LightningStoreClient\n"
        "async def main():\n"
        f"    async with LightningStoreClient('http://{STORE_IP}:{PORT}', token='wrong') as store:\n"
        "        await store.query_rollouts()\n"
        "anyio.run(main)\n"
    )
    try:
        assert serve.stdout is not None
        announced = serve.stdout.readline()  # printed once the socket listens
        assert f"on http://{STORE_IP}:{PORT}" in announced, announced
        # From the runner host the store host is the veth address; its own loopback has no server.
        probe = subprocess.run(
            _in(hosts.runner, sys.executable, "-c", PROBE), capture_output=True, text=True, timeout=60
        )
        assert probe.stdout.split() == ["veth", "0", "loopback", "refused"], probe.stderr
        result = subprocess.run(
            _in(hosts.runner, sys.executable, "-c", client), capture_output=True, text=True, timeout=120
        )
    finally:
        serve.terminate()
        serve.communicate(timeout=30)
    assert result.returncode != 0
    assert "401" in result.stderr or "token" in result.stderr.lower(), result.stderr


def _read_until(process: subprocess.Popen[bytes], marker: str, timeout: float) -> str:
    """What ``process`` printed until it printed ``marker``, exited, or ``timeout`` passed."""
    assert process.stdout is not None
    fd, seen, deadline = process.stdout.fileno(), b"", time.monotonic() + timeout
    while marker.encode() not in seen:
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        chunk = os.read(fd, 65536) if ready else b""
        if not chunk:  # timed out, or the process closed its output (exited)
            break
        seen += chunk
    return seen.decode(errors="replace")


@contextlib.contextmanager
def _ray_node(namespace: str, env: dict[str, str], *options: str) -> Iterator[str]:
    """A Ray node started with ``ray start --block`` in ``namespace``; yields what it printed.

    Namespaces share the machine's process table, so ``ray stop`` there would stop every Ray
    process of the machine (other clusters too): the node is stopped through its own ``ray
    start`` process instead, which stops the node's processes on SIGTERM."""
    node = subprocess.Popen(
        _in(namespace, RAY, "start", "--block", *options),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    try:
        started = _read_until(node, "Ray runtime started.", timeout=180)
        assert "Ray runtime started." in started, f"`ray start {' '.join(options)}` did not start:\n{started}"
        yield started
    finally:
        node.send_signal(signal.SIGTERM)
        try:
            node.wait(timeout=90)
        except subprocess.TimeoutExpired:
            os.killpg(node.pid, signal.SIGKILL)
            node.wait(timeout=30)
        if node.stdout is not None:
            node.stdout.close()


def _processes_with_env(prefix: str) -> list[int]:
    """Ids of the processes with an environment variable starting ``prefix`` (``NAME=value``)."""
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        with contextlib.suppress(OSError):
            if any(entry.startswith(prefix.encode()) for entry in environ.read_bytes().split(b"\0")):
                found.append(int(environ.parent.name))
    return found


@pytest.mark.slow
def test_ray_head_on_the_store_host_and_runner_actors_on_the_runner_host(
    hosts: Hosts, tmp_path: Path
) -> None:
    """docs/scale-out.md "With Ray" across the veth: Ray's auth token copied to both hosts, a
    head node without CPUs on the store host, a worker node with ``runner_slot`` on the runner
    host, and the driver on the store host; every rollout runs in an actor on the runner host."""
    job = tmp_path / "job.py"
    job.write_text(RAY_JOB)
    ray_dirs = Path(tempfile.mkdtemp(prefix="agl-ray-"))  # short: Ray's socket paths live under it
    homes = {name: tmp_path / f"home-{name}" for name in ("store", "runner")}
    envs = {}
    for name, home in homes.items():
        (ray_dirs / name).mkdir()
        home.mkdir()
        env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
        # Each host has its own home (~/.ray/auth_token) and temp dir (where `address="auto"` looks);
        # the recipe exports RAY_AUTH_MODE=token on every host (a joining node needs it).
        env |= {
            "HOME": str(home),
            "RAY_TMPDIR": str(ray_dirs / name),
            "RAY_AUTH_MODE": "token",
            "RAY_USAGE_STATS_ENABLED": "0",
        }
        envs[name] = env | {"PYTHONUNBUFFERED": "1"}
    common = ["--object-store-memory=100000000"]
    ours = f"RAY_TMPDIR={ray_dirs}/"
    try:
        generated = subprocess.run(
            _in(hosts.store, RAY, "get-auth-token", "--generate"),
            capture_output=True,
            text=True,
            timeout=120,
            env=envs["store"],
        )
        assert generated.returncode == 0, generated.stderr
        token = homes["store"] / ".ray" / "auth_token"
        (homes["runner"] / ".ray").mkdir()
        shutil.copy(token, homes["runner"] / ".ray" / "auth_token")  # "copy ~/.ray/auth_token to every node"
        with (
            _ray_node(
                hosts.store,
                envs["store"],
                "--head",
                f"--node-ip-address={STORE_IP}",
                f"--port={RAY_PORT}",
                "--num-cpus=0",
                "--include-dashboard=false",
                f"--temp-dir={ray_dirs / 'store' / 'ray'}",
                *common,
            ),
            _ray_node(
                hosts.runner,
                envs["runner"],
                f"--address={STORE_IP}:{RAY_PORT}",
                f"--node-ip-address={RUNNER_IP}",
                '--resources={"runner_slot": 16}',
                f"--temp-dir={ray_dirs / 'runner' / 'ray'}",
                *common,
            ),
        ):
            driver = subprocess.run(
                _in(hosts.store, sys.executable, str(job)),
                capture_output=True,
                text=True,
                timeout=300,
                env=envs["store"],
            )
            assert _processes_with_env(ours)  # the nodes' processes, found by their environment
        left = _processes_with_env(ours)
        assert not left, f"Processes of the Ray nodes left after both were stopped: {left}"
    finally:
        for pid in _processes_with_env(ours):  # only when the test failed above
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(ray_dirs, ignore_errors=True)
    assert driver.returncode == 0, driver.stderr[-5000:]
    results = sorted(line.split()[1:] for line in driver.stdout.splitlines() if line.startswith("result "))
    assert [(task, status) for task, status, *_ in results] == [(str(t), "succeeded") for t in range(1, 5)], (
        driver.stdout + driver.stderr[-5000:]
    )
    assert [float(reward) for _, _, _, reward, _ in results] == [2.0 * t for t in range(1, 5)]
    assert {node for *_, node in results} == {RUNNER_IP}  # every rollout ran on the runner host's node
    assert f"store_url http://{STORE_IP}:" in driver.stdout  # the store was served on the veth address
