"""conode: run and orchestrate conodes (collective-authority nodes) from Python.

Quick start::

    import conode

    with conode.LocalCluster(4) as cluster:          # 4 nodes in this process
        for m in cluster.members:
            st = conode.status(m.client_url)         # over the client port
            assert st["ServerIdentity"]["Public"] == m.public_key

    cfg = conode.NodeConfig.generate("127.0.0.1", 0, "my node")
    with conode.Node(cfg, data_dir="/tmp/conode-db") as node:
        print(node.client_url, node.status()["Generic"]["Uptime"])

Every blocking call releases the GIL. Errors derive from ``conode.ConodeError``.
"""

from typing import Dict

from ._conode import (
    AlreadyRunningError,
    ConfigError,
    ConodeError,
    LocalCluster,
    Member,
    NetworkError,
    Node,
    NodeConfig,
    NotRunningError,
    Roster,
    StateError,
    StorageError,
    VerifyError,
    __version__,
    enable_logging,
    status,
)

#: What ``status()``, ``Node.status()`` and ``LocalCluster.status(i)`` return:
#: ``{section: {key: value}}`` with "Generic", "Db", "Conode" and "ServerIdentity".
StatusDict = Dict[str, Dict[str, str]]

# Light-client verification (cosi, skipchain, beacon) lands in conode._conode as `verify_*`
# functions (see src/verify.rs); import them here and list them in __all__ as they are added.

__all__ = [
    "__version__",
    # orchestration
    "NodeConfig",
    "Node",
    "LocalCluster",
    "Roster",
    "Member",
    "status",
    "StatusDict",
    "enable_logging",
    # errors
    "ConodeError",
    "ConfigError",
    "NetworkError",
    "StorageError",
    "StateError",
    "AlreadyRunningError",
    "NotRunningError",
    "VerifyError",
    # verification (to come)
]
