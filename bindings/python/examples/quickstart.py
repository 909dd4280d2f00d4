"""Embedding conode from Python: a local cothority, its services (collective signing, a skipchain,
a randomness beacon) checked with the light-client verifiers, a client over the client port, and
one own node.

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

        # Collective signing: one aggregate BLS signature + a mask of who signed.
        sig = cluster.sign(b"hello, cothority", timeout=1.0)
        conode.verify_cosi(b"hello, cothority", sig.signature, sig.mask, cluster.roster)
        print("signed by", sig.signed, "- required", sig.required)

        cluster.stop(2)  # its ports close, the others keep running
        sig = cluster.sign(b"one node down", timeout=0.5)  # f = 1 of 5 may be missing
        print("with node 2 down: missing", sig.missing, sig.reasons[2])
        cluster.stop(3)  # f + 1 down: too few to sign
        try:
            cluster.sign(b"two nodes down", timeout=0.5)
        except conode.ThresholdError as e:
            print("threshold not reached, missing nodes", list(e.missing))
        cluster.restart(2)  # same ports, same database
        cluster.restart(3)

        # A skipchain: blocks appended by its owner, a short proof from the genesis.
        owner = conode.IdentityKey.generate()
        genesis = cluster.create_skipchain([owner], b"genesis")
        for i in range(1, 5):
            cluster.append_block(genesis.hash, f"entry {i}".encode(), owner)
        proof = cluster.skipchain_proof(genesis.hash)
        newest = conode.verify_skipchain(genesis.hash, proof)  # trust only the genesis id
        print("block", newest.index, newest.data, "proven in", len(proof) - 1, "hops")

        # A drand-compatible beacon (quicknet's scheme), one round per second after a DKG.
        chain = cluster.start_beacon("bls-unchained-g1-rfc9380", period=1, genesis_delay=1.0)
        first = chain.round(1, timeout=30)  # waits until round 1 is produced
        conode.verify_beacon(chain.info, first)
        print("beacon round", first.round, "randomness", first.randomness.hex()[:16])

        # An app talks to any member over its client port and verifies what it gets.
        client = conode.Client(cluster.members[4].client_url)
        info = client.beacon_info()  # drand's /info, chain hash checked
        latest = client.beacon_latest(info)  # verified with the trusted info
        print("client: latest round", latest.round, "on chain", info.hash[:16])
        blocks = client.skipchain_update(genesis.hash)  # verified proof
        print("client: newest block", blocks[-1].index)

        roster = cluster.roster_toml  # [[servers]] entries, for `conode check` and clients
        print(roster.count("[[servers]]"), "members in the roster")

    # A node of your own, from a private.toml (written with mode 0600).
    with tempfile.TemporaryDirectory() as tmp:
        config = conode.NodeConfig.generate("127.0.0.1", 0, "my node")  # port 0: any free ports
        config.save(f"{tmp}/private.toml")
        with conode.Node.from_file(f"{tmp}/private.toml", data_dir=f"{tmp}/db") as node:
            print("serving on", node.client_url, "as", node.public_key[:16])
            print(node.status()["Db"]["Size"])
        try:
            node.stop()
        except conode.StateError as e:  # NotRunningError
            print("after the with block:", e)


if __name__ == "__main__":
    main()
