"""NodeConfig and Roster: generate, round trips, files and the errors naming them."""

import os
import stat

import pytest

import conode


def test_generate(config):
    assert len(config.public_key) == 64
    assert len(config.node_id) == 64 and config.node_id != config.public_key
    assert config.address == "tls://127.0.0.1:0"
    assert config.description == "pytest node"
    assert config.cosi_public is not None and len(config.cosi_public) == 96
    assert "Private" not in repr(config) and config.public_key in repr(config)
    other = conode.NodeConfig.generate("127.0.0.1", 7770)
    assert other.public_key != config.public_key
    assert other.member().client_url == "ws://127.0.0.1:7771"


def test_generate_rejects_bad_host():
    with pytest.raises(conode.ConfigError) as e:
        conode.NodeConfig.generate("", 7770)
    assert e.value.field == "Address"
    with pytest.raises(OverflowError):
        conode.NodeConfig.generate("127.0.0.1", 70000)


def test_toml_round_trip(config):
    text = config.to_toml()
    assert "Private" in text
    again = conode.NodeConfig.from_toml(text)
    assert (again.public_key, again.address, again.cosi_public) == (config.public_key, config.address, config.cosi_public)


def test_file_round_trip(tmp_path, config):
    path = tmp_path / "private.toml"
    config.save(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert conode.NodeConfig.from_file(path).public_key == config.public_key
    assert conode.NodeConfig.from_file(str(path)).public_key == config.public_key
    with pytest.raises(conode.ConfigError, match="already exists") as e:
        config.save(path)
    assert e.value.file == str(path)
    config.save(path, overwrite=True)


def test_garbled_toml_names_the_file(tmp_path):
    path = tmp_path / "private.toml"
    path.write_text("Suite = \"Ed25519\"\nPublic = [unclosed\n")
    os.chmod(path, 0o600)
    with pytest.raises(conode.ConfigError) as e:
        conode.NodeConfig.from_file(path)
    assert str(path) in str(e.value)
    assert "not valid TOML" in str(e.value)
    assert e.value.file == str(path)
    with pytest.raises(conode.ConfigError, match="my-origin"):
        conode.NodeConfig.from_toml("= nope", origin="my-origin")


def test_world_readable_private_toml_is_refused(tmp_path, config):
    path = tmp_path / "private.toml"
    config.save(path)
    os.chmod(path, 0o644)
    with pytest.raises(conode.ConfigError) as e:
        conode.NodeConfig.from_file(path)
    assert str(path) in str(e.value)
    assert "readable by group or others" in str(e.value)
    assert e.value.file == str(path)
    with pytest.raises(conode.ConfigError, match="readable by group or others"):
        conode.Node.from_file(path, data_dir=tmp_path / "db")


def test_bad_field_names_file_and_field(tmp_path, config):
    text = config.to_toml().replace(config.public_key, "00" * 32)
    with pytest.raises(conode.ConfigError) as e:
        conode.NodeConfig.from_toml(text, origin="node1/private.toml")
    assert e.value.field == "Public"
    assert e.value.file == "node1/private.toml"
    assert "node1/private.toml" in str(e.value) and "Public" in str(e.value)


def test_missing_file():
    with pytest.raises(conode.ConfigError, match="does-not-exist.toml") as e:
        conode.NodeConfig.from_file("/nonexistent/does-not-exist.toml")
    assert e.value.file == "/nonexistent/does-not-exist.toml"


def test_roster_from_public_toml():
    configs = [conode.NodeConfig.generate("127.0.0.1", 7000 + 2 * i, f"n{i}") for i in range(3)]
    roster = conode.Roster.from_toml("".join(c.public_toml() for c in configs))
    assert len(roster) == 3
    assert [m.public_key for m in roster.members] == [c.public_key for c in configs]
    assert [m.index for m in roster.members] == [0, 1, 2]
    assert roster.members[2].client_url == "ws://127.0.0.1:7005"
    assert len(roster.id) == 64
    assert conode.Roster.from_toml(roster.to_toml()).id == roster.id
    d = roster.members[0].to_dict()
    assert d["public_key"] == configs[0].public_key and d["description"] == "n0"
    assert roster.members[0] == conode.Roster.from_toml(roster.to_toml()).members[0]
    with pytest.raises(conode.ConfigError, match="duplicate"):
        conode.Roster.from_toml(configs[0].public_toml() * 2)
