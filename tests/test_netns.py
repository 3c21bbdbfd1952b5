"""The multi-host recipe of docs/scale-out.md over a real, non-loopback network.

Two network namespaces on this machine stand for two hosts, joined by a veth pair on the
benchmarking range 198.18.0.0/15 (RFC 2544): the *store host* runs the job with ``cs`` role
``algorithm`` (store server + algorithm, bound on its veth address, with a bearer token), the
*runner host* runs the same script with role ``runner`` against that address. Each namespace
has its own loopback, so nothing reaches the other side through 127.0.0.1.

Needs root and iproute2 (``ip netns``, ``ip link``), as CI has. Where they are missing the test
fails saying so: the recipe is then untested, which must not pass as a skip. The namespaces
(and with them the veth pair) are deleted after the test, also when it fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

STORE_IP, RUNNER_IP = "198.18.0.1", "198.18.0.2"
PORT = 4747
TOKEN = "netns-test-token"
AGL = str(Path(sys.executable).with_name("agl"))
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
