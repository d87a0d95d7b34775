"""A one-node Ray cluster (1 CPU) whose only CPU is held by another job, for tests of trials
that wait for resources. Run as a script: prints the cluster's address, then holds the CPU
until its stdin closes, and shuts the cluster down."""
import sys

import ray
from ray.cluster_utils import Cluster


@ray.remote(num_cpus=1)
class Holder:
    def ready(self) -> bool:
        return True


def main() -> None:
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    try:
        ray.init(address=cluster.address, include_dashboard=False, log_to_driver=False)
        holder = Holder.remote()
        ray.get(holder.ready.remote())
        print(cluster.address, flush=True)
        sys.stdin.read()
    finally:
        ray.shutdown()
        cluster.shutdown()


if __name__ == "__main__":
    main()
