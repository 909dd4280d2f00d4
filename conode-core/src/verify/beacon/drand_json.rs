//! drand's JSON shapes, both ways, next to the types they describe: the parsers a light client
//! uses to read a drand server's `/info` and `/public/{round}`, and the writers the node uses to
//! serve the same shapes (its HTTP API, `/Beacon/Info`, the bindings). Pure: no runtime, no I/O.

use super::{Beacon, BeaconError, ChainInfo, Scheme};

impl ChainInfo {
    /// Parses drand's `/info` JSON, both the v1 shape (`hash`, `groupHash`, `schemeID`,
    /// `metadata.beaconID`) and the v2 shape (`chain_hash`, `genesis_seed`, `scheme`, `beacon_id`).
    /// A missing scheme means `pedersen-bls-chained` and a missing beacon id the default beacon, as in
    /// drand. When the JSON carries a chain hash it must equal the hash of the parsed fields; the
    /// group public key is checked too.
    pub fn from_drand_json(json: &str) -> Result<ChainInfo, BeaconError> {
        let v: serde_json::Value = serde_json::from_str(json).map_err(|e| BeaconError::Json(e.to_string()))?;
        let public_key = hex_field(&v, "public_key")?.ok_or(BeaconError::MissingField("public_key"))?;
        let period = v.get("period").and_then(|p| p.as_u64()).ok_or(BeaconError::MissingField("period"))?;
        let period = u32::try_from(period)
            .map_err(|_| BeaconError::OutOfRange { field: "period", value: period.to_string() })?;
        let genesis_time =
            v.get("genesis_time").and_then(|t| t.as_i64()).ok_or(BeaconError::MissingField("genesis_time"))?;
        let genesis_seed = match hex_field(&v, "genesis_seed")? {
            Some(s) => s,
            None => hex_field(&v, "groupHash")?.ok_or(BeaconError::MissingField("genesis_seed"))?,
        };
        let scheme = match str_field(&v, "scheme")?.or(str_field(&v, "schemeID")?) {
            None | Some("") => Scheme::default(),
            Some(id) => Scheme::from_id(id)?,
        };
        let beacon_id = match str_field(&v, "beacon_id")? {
            Some(id) => id,
            None => match v.get("metadata") {
                Some(m) if !m.is_null() => str_field(m, "beaconID")?.unwrap_or(""),
                _ => "",
            },
        }
        .to_string();
        let info = ChainInfo { public_key, period, genesis_time, genesis_seed, scheme, beacon_id };
        info.validate()?;
        let claimed = match str_field(&v, "chain_hash")? {
            Some(h) => Some(h),
            None => str_field(&v, "hash")?,
        };
        if let Some(claimed) = claimed {
            let computed = info.hash_hex();
            if !claimed.eq_ignore_ascii_case(&computed) {
                return Err(BeaconError::ChainHashMismatch { claimed: claimed.to_string(), computed });
            }
        }
        Ok(info)
    }
}

impl Beacon {
    /// Parses drand's beacon JSON (`/public/{round}`): `round`, `signature`, optional
    /// `previous_signature`, optional `randomness` (checked to be `sha256(signature)` when present).
    /// The signature itself is not verified here.
    pub fn from_drand_json(json: &str) -> Result<Beacon, BeaconError> {
        let v: serde_json::Value = serde_json::from_str(json).map_err(|e| BeaconError::Json(e.to_string()))?;
        let round = v.get("round").and_then(|r| r.as_u64()).ok_or(BeaconError::MissingField("round"))?;
        let signature = hex_field(&v, "signature")?.ok_or(BeaconError::MissingField("signature"))?;
        let previous_signature = hex_field(&v, "previous_signature")?;
        let beacon = Beacon { round, signature, previous_signature };
        if let Some(r) = hex_field(&v, "randomness")? {
            if r != beacon.randomness() {
                return Err(BeaconError::RandomnessMismatch { round });
            }
        }
        Ok(beacon)
    }
}

/// drand's v1 chain info JSON (`/info`), fields in drand's order.
pub fn info_json(info: &ChainInfo) -> String {
    #[derive(serde::Serialize)]
    struct Metadata<'a> {
        #[serde(rename = "beaconID")]
        beacon_id: &'a str,
    }
    #[derive(serde::Serialize)]
    struct InfoV1<'a> {
        public_key: String,
        period: u32,
        genesis_time: i64,
        hash: String,
        #[serde(rename = "groupHash")]
        group_hash: String,
        #[serde(rename = "schemeID")]
        scheme_id: &'a str,
        metadata: Metadata<'a>,
    }
    let beacon_id = if info.beacon_id.is_empty() { "default" } else { info.beacon_id.as_str() };
    serde_json::to_string(&InfoV1 {
        public_key: hex::encode(&info.public_key),
        period: info.period,
        genesis_time: info.genesis_time,
        hash: info.hash_hex(),
        group_hash: hex::encode(&info.genesis_seed),
        scheme_id: info.scheme.id(),
        metadata: Metadata { beacon_id },
    })
    .unwrap_or_default()
}

/// drand's beacon JSON (`/public/{round}`): `previous_signature` only for chained schemes.
pub fn beacon_json(b: &Beacon) -> String {
    #[derive(serde::Serialize)]
    struct Rand {
        round: u64,
        randomness: String,
        signature: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        previous_signature: Option<String>,
    }
    serde_json::to_string(&Rand {
        round: b.round,
        randomness: hex::encode(b.randomness()),
        signature: hex::encode(&b.signature),
        previous_signature: b.previous_signature.as_ref().map(hex::encode),
    })
    .unwrap_or_default()
}

/// A string field: `Ok(None)` when absent or null, an error when present with another type.
fn str_field<'a>(v: &'a serde_json::Value, field: &'static str) -> Result<Option<&'a str>, BeaconError> {
    match v.get(field) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(BeaconError::MissingField(field)),
    }
}

fn hex_field(v: &serde_json::Value, field: &'static str) -> Result<Option<Vec<u8>>, BeaconError> {
    str_field(v, field)?
        .map(|s| hex::decode(s).map_err(|e| BeaconError::Hex { field, reason: e.to_string() }))
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::beacon::{public_key_from_secret, sign_round};

    /// What the node writes, a drand client reads back unchanged, for every scheme.
    #[test]
    fn writers_round_trip_through_the_parsers() {
        let sk = [0x11u8; 32];
        for scheme in Scheme::ALL {
            let info = ChainInfo {
                public_key: public_key_from_secret(scheme, &sk).unwrap(),
                period: 3,
                genesis_time: 1_700_000_000,
                genesis_seed: vec![9; 32],
                scheme,
                beacon_id: "test".into(),
            };
            let j = info_json(&info);
            assert!(j.starts_with("{\"public_key\":"), "{j}");
            let v: serde_json::Value = serde_json::from_str(&j).unwrap();
            assert_eq!(v["hash"], info.hash_hex());
            assert_eq!(v["schemeID"], scheme.id());
            assert_eq!(v["metadata"]["beaconID"], "test");
            assert_eq!(ChainInfo::from_drand_json(&j).unwrap(), info);

            let prev = vec![0x5a; 8];
            let prev = scheme.is_chained().then_some(prev.as_slice());
            let signature = sign_round(scheme, &sk, 7, prev).unwrap();
            let b = Beacon { round: 7, signature, previous_signature: prev.map(<[u8]>::to_vec) };
            let bj = beacon_json(&b);
            assert_eq!(bj.contains("previous_signature"), scheme.is_chained(), "{bj}");
            let back = Beacon::from_drand_json(&bj).unwrap();
            assert_eq!(back, b);
            assert_eq!(info.verify(&back), Ok(()));
        }
    }

    /// An empty beacon id is drand's default beacon and is written as `"default"`.
    #[test]
    fn empty_beacon_id_is_written_as_default() {
        let info = ChainInfo {
            public_key: public_key_from_secret(Scheme::PedersenBlsChained, &[0x22; 32]).unwrap(),
            period: 30,
            genesis_time: 1_595_431_050,
            genesis_seed: vec![1; 32],
            scheme: Scheme::PedersenBlsChained,
            beacon_id: String::new(),
        };
        let back = ChainInfo::from_drand_json(&info_json(&info)).unwrap();
        assert_eq!(back.beacon_id, "default");
        assert_eq!(back.hash(), info.hash());
    }
}
