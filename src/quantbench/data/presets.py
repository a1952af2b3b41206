"""Column layouts and cleaning of public flow datasets, as DataConfig defaults.

A preset is a plain mapping of DataConfig fields; ``data_config_from_mapping`` applies it and then
the user's own keys one by one, so any single key can be overridden. See docs/datasets.md for
where each dataset comes from and what classes to expect.
"""

from __future__ import annotations

from typing import Any

# Dropped when present, whatever the dataset: they identify a flow or its capture rather than
# describe its behaviour, so a model would learn the testbed instead of the traffic.
IDENTIFIER_COLUMNS: tuple[str, ...] = (
    "Flow ID",
    "Src IP",
    "Source IP",
    "Dst IP",
    "Destination IP",
    "Src Port",
    "Source Port",
    "Dst Port",
    "Destination Port",
    "Timestamp",
)

# CICFlowMeter exports (CIC-Darknet2020, CIC-IDS2017, CSE-CIC-IDS2018): the identifiers plus the
# HTTP-similarity id of CICFlowMeter-V4 and pandas' name for the repeated header column.
_CIC_EXCLUDE = (*IDENTIFIER_COLUMNS, "SimillarHTTP", "Fwd Header Length.1")

NSL_KDD_FEATURES: tuple[str, ...] = (
    "duration", "protocol_type", "service", "flag", "src_bytes", "dst_bytes", "land",
    "wrong_fragment", "urgent", "hot", "num_failed_logins", "logged_in", "num_compromised",
    "root_shell", "su_attempted", "num_root", "num_file_creations", "num_shells",
    "num_access_files", "num_outbound_cmds", "is_host_login", "is_guest_login", "count",
    "srv_count", "serror_rate", "srv_serror_rate", "rerror_rate", "srv_rerror_rate",
    "same_srv_rate", "diff_srv_rate", "srv_diff_host_rate", "dst_host_count",
    "dst_host_srv_count", "dst_host_same_srv_rate", "dst_host_diff_srv_rate",
    "dst_host_same_src_port_rate", "dst_host_srv_diff_host_rate", "dst_host_serror_rate",
    "dst_host_srv_serror_rate", "dst_host_rerror_rate", "dst_host_srv_rerror_rate",
)  # fmt: skip

# The usual four attack categories of KDD'99 / NSL-KDD (training and test set attack names).
_NSL_KDD_CATEGORIES = {
    "normal": ["normal"],
    "dos": [
        "back", "land", "neptune", "pod", "smurf", "teardrop", "apache2", "mailbomb",
        "processtable", "udpstorm",
    ],
    "probe": ["ipsweep", "nmap", "portsweep", "satan", "mscan", "saint"],
    "r2l": [
        "ftp_write", "guess_passwd", "imap", "multihop", "phf", "spy", "warezclient",
        "warezmaster", "sendmail", "named", "snmpgetattack", "snmpguess", "xlock", "xsnoop",
        "worm",
    ],
    "u2r": ["buffer_overflow", "loadmodule", "perl", "rootkit", "httptunnel", "ps", "sqlattack",
            "xterm"],
}  # fmt: skip
NSL_KDD_LABEL_MAP = {name: cat for cat, names in _NSL_KDD_CATEGORIES.items() for name in names}

# CIC-Darknet2020 spells some application classes two ways.
DARKNET_ALIASES = {
    "AUDIO-STREAMING": "Audio-Streaming",
    "File-transfer": "File-Transfer",
    "Video-streaming": "Video-Streaming",
}

PRESETS: dict[str, dict[str, Any]] = {
    "cic_darknet2020": {
        "label_column": "Label.1",
        "exclude_columns": (*_CIC_EXCLUDE, "Label"),
        "label_aliases": DARKNET_ALIASES,
        # The file names both label columns "Label": the second becomes "Label.1".
        "duplicate_columns": "rename",
        "file_glob": "*.csv",
    },
    "iscx_vpn2016": {
        "label_column": "class1",
        "file_glob": "*.arff",
    },
    "cic_ids2017": {
        "label_column": "Label",
        "exclude_columns": _CIC_EXCLUDE,
        "duplicate_columns": "first",
        "file_glob": "*.csv",
    },
    "cse_cic_ids2018": {
        "label_column": "Label",
        "exclude_columns": _CIC_EXCLUDE,
        "duplicate_columns": "first",
        "file_glob": "*.csv",
    },
    "unsw_nb15": {
        "label_column": "attack_cat",
        "exclude_columns": ("id", "label", "srcip", "sport", "dstip", "dsport", "stime", "ltime"),
        "categorical_columns": ("proto", "service", "state"),
        "file_glob": "UNSW_NB15_t*-set.csv",
    },
    "nsl_kdd": {
        "header": False,
        "column_names": (*NSL_KDD_FEATURES, "label", "difficulty"),
        "label_column": "label",
        "exclude_columns": ("difficulty",),
        "categorical_columns": ("protocol_type", "service", "flag"),
        "label_map": NSL_KDD_LABEL_MAP,
        "file_glob": "KDDTrain+.txt",
    },
}


def preset_defaults(name: str | None) -> dict[str, Any]:
    """The DataConfig fields a preset sets ({} for none); ValueError naming the known presets."""
    if name is None:
        return {}
    if name not in PRESETS:
        raise ValueError(
            f"data.preset: {name!r} is not a known preset; choose one of: "
            f"null, {', '.join(PRESETS)}"
        )
    return dict(PRESETS[name])
