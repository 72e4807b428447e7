import numpy as np
import pytest

from kmtl.data.datasets import load_kuairand
from kmtl.data.datasets.kuairand import HASH_BINS
from kmtl.data.datasets.kuairand import TASKS
from kmtl.features.spec import SequenceFeature

LOG_HEADER = (
    "user_id,video_id,date,hourmin,time_ms,is_click,is_like,is_follow,"
    "is_comment,is_forward,is_hate,long_view,play_time_ms,duration_ms,"
    "profile_stay_time,comment_stay_time,is_profile_enter,is_rand,tab"
)
USER_HEADER = (
    "user_id,user_active_degree,is_lowactive_period,is_live_streamer,"
    "is_video_author,follow_user_num,follow_user_num_range,fans_user_num,"
    "fans_user_num_range,friend_user_num,friend_user_num_range,"
    "register_days,register_days_range,"
    + ",".join(f"onehot_feat{i}" for i in range(18))
)
USERS = [
    '0,high_active,0,0,0,5,"(0,10]",0,0,0,0,107,91-180,'
    + "0,1,17,638,2,0,1,6,184,6,3,0,0,0,0,0,0,0",
    '1,full_active,0,0,0,386,"(250,500]",4,"[1,10)",2,"[1,5)",327,'
    + "181-365,0,3,25,1021,0,0,1,6,186,2,0,0,0,0,0,0,0,",
]
VIDEO_HEADER = (
    "video_id,author_id,video_type,upload_dt,upload_type,visible_status,"
    "video_duration,server_width,server_height,music_id,music_type,tag"
)
VIDEOS = [
    "10,441,NORMAL,2020-07-08,ShortImport,1,17200.0,720,1280,989206467,4,"
    '"12,65"',
    "11,7,AD,2022-01-02,Web,1,,720,1280,0,9,",
]


def _log(user, video, tab, t, click, like, long_view):
    hourmin = 100 * (t % 24)
    return (
        f"{user},{video},20220410,{hourmin},{1650000000000 + t},{click},"
        f"{like},0,0,0,0,{long_view},5000,17200,0,0,0,0,{tab}"
    )


def _rows(times):
    return [
        _log(
            t % 2, 10 + t % 3 // 2, t % 4, t, t % 2, int(t % 5 == 0), t % 3 == 0
        )
        for t in times
    ]


@pytest.fixture
def kuai_dir(tmp_path):
    folder = tmp_path / "KuaiRand-Pure" / "data"
    folder.mkdir(parents=True)

    def write(name, header, rows):
        (folder / name).write_text("\n".join([header, *rows]) + "\n")

    # Out of order on purpose: the loader sorts by time_ms.
    write(
        "log_standard_4_08_to_4_21_pure.csv",
        LOG_HEADER,
        _rows([5, 3, 1, 7, 9, 11, 13, 15, 17, 19]),
    )
    write(
        "log_standard_4_22_to_5_08_pure.csv",
        LOG_HEADER,
        _rows([0, 2, 4, 6, 8, 10, 12, 14, 16, 18]),
    )
    write("user_features_pure.csv", USER_HEADER, USERS)
    write("video_features_basic_pure.csv", VIDEO_HEADER, VIDEOS)
    return tmp_path


def test_columns_labels_and_time_split(kuai_dir):
    data = load_kuairand(kuai_dir)
    assert (len(data.train), len(data.val), len(data.test)) == (16, 2, 2)
    assert len(data.train.columns) == 44
    assert len(data.spec.features) == 41
    assert data.spec.task_names == list(TASKS)
    # Time order: hour = t % 24 with t the row's time offset.
    assert data.train.hour.tolist() == list(range(16))
    assert data.val.hour.tolist() == [16, 17]
    assert data.test.hour.tolist() == [18, 19]
    t = np.arange(16)
    assert data.train.is_click.tolist() == (t % 2).tolist()
    assert data.train.is_like.tolist() == (t % 5 == 0).astype(int).tolist()
    assert data.train.long_view.tolist() == (t % 3 == 0).astype(int).tolist()
    for task in TASKS:
        assert data.train[task].dtype == "int64"
    assert data.train.tab.tolist() == (t % 4).tolist()
    scenario = data.spec.scenario
    assert scenario.name == "tab"
    assert scenario.values == tuple(f"tab{i}" for i in range(15))
    assert not {"play_time_ms", "is_follow", "time_ms"} & set(data.train)


def test_side_features(kuai_dir):
    data = load_kuairand(kuai_dir)
    df = data.train
    by_user = df.groupby("user_id").first()
    assert by_user.user_active_degree.tolist() == ["high_active", "full_active"]
    assert by_user.onehot_feat3.tolist() == ["638", "1021"]
    assert by_user.onehot_feat17.tolist() == ["0", ""]  # missing -> ""
    assert by_user.follow_user_num.tolist() == pytest.approx(
        np.log1p([5, 386]).tolist()
    )
    by_video = df.groupby("video_id").first()
    assert by_video.video_type.tolist() == ["NORMAL", "AD"]
    assert by_video.music_type.tolist() == ["4", "9"]
    assert by_video.tag.tolist() == [["12", "65"], []]
    assert by_video.log_video_seconds.tolist() == pytest.approx(
        [np.log1p(17.2), 0.0]
    )
    assert df.log_video_seconds.dtype == "float32"
    assert data.spec.feature("music_id").hash_bins == HASH_BINS
    assert data.spec.feature("author_id").vocabulary_size == 442
    assert isinstance(data.spec.feature("tag"), SequenceFeature)
    assert data.spec.feature("tag").vocabulary == ("12", "65")
    assert data.spec.feature("user_active_degree").vocabulary == (
        "full_active",
        "high_active",
    )


def test_tabs_are_filtered_and_reindexed(kuai_dir):
    data = load_kuairand(kuai_dir, tabs=[3, 1])
    assert data.spec.scenario.values == ("tab3", "tab1")
    rows = len(data.train) + len(data.val) + len(data.test)
    assert rows == 10
    # Tab 1 (odd t with t % 4 == 1) -> 1, tab 3 -> 0.
    assert data.train.tab.tolist() == [1, 0, 1, 0, 1, 0, 1, 0]
    with pytest.raises(ValueError, match="tabs="):
        load_kuairand(kuai_dir, tabs=[15])


def test_unknown_version_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="version='27k'"):
        load_kuairand(tmp_path, version="27k")
