"""Embedding conode from Python: a local cothority, status over the client port, one own node.

Run: python examples/quickstart.py   (after `pip install` of the conode wheel)
"""

import tempfile

import conode


def main() -> None:
    # Five conodes in this process on 127.0.0.1, sharing one runtime.
    with conode.LocalCluster(5) as cluster:
        for m in cluster.members:
            st = conode.status(m.client_url)  # /Status/Request over the client port
            assert st["ServerIdentity"]["Public"] == m.public_key
            print(m.index, m.address, m.client_url, "up", st["Generic"]["Uptime"])

        cluster.stop(2)  # its ports close, the others keep running
        try:
            conode.status(cluster.members[2].client_url, timeout=2)
        except conode.NetworkError as e:
            print("node 2 is down:", e)
        cluster.restart(2)  # same ports, same database

        roster = cluster.roster_toml  # [[servers]] entries, for `conode check` and clients
        print(roster.count("[[servers]]"), "members in the roster")

    # A node of your own, from a private.toml (written with mode 0600).
    with tempfile.TemporaryDirectory() as tmp:
        config = conode.NodeConfig.generate("127.0.0.1", 0, "my node")  # port 0: any free ports
        config.save(f"{tmp}/private.toml")
        with conode.Node.from_file(f"{tmp}/private.toml", data_dir=f"{tmp}/db") as node:
            print("serving on", node.client_url, "as", node.public_key[:16])
            print(node.status()["Db"]["Path"])
        try:
            node.stop()
        except conode.StateError as e:  # NotRunningError
            print("after the with block:", e)


if __name__ == "__main__":
    main()
