//! The dataset loaders on the real shared data (skipped loudly without it, failing under CI).

mod common;

use ctscreen::data::{Split, load_cls_dir, load_seg_dir, load_unlabelled_dir};

#[test]
fn medseg_split_is_the_documented_holdback_with_matching_masks() {
    let Some(root) = common::shared_data() else {
        return;
    };
    let dir = root.join("medseg-covid/train");
    let all = load_seg_dir(&dir, Split::All).unwrap();
    let val = load_seg_dir(&dir, Split::Val).unwrap();
    let train = load_seg_dir(&dir, Split::Train).unwrap();
    assert_eq!(all.len(), 50);
    assert_eq!(val.len() + train.len(), 50);
    assert_eq!(val.len(), 12);
    for item in &all {
        assert_eq!(item.lesion.len(), item.image.width * item.image.height);
        let classes = item
            .classes
            .as_ref()
            .expect("every MedSeg slice has a multiclass mask");
        // Binary and multiclass masks agree on what is lesion (up to a few anti-aliased pixels).
        let disagree = classes
            .iter()
            .zip(&item.lesion)
            .filter(|(c, l)| (**c > 0) != (**l > 0))
            .count();
        assert!(
            disagree * 100 <= item.lesion.len(),
            "{}: {disagree} pixels disagree",
            item.name
        );
    }
    assert!(
        all.iter().any(|i| i.classes.as_ref().unwrap().contains(&2)),
        "some consolidation exists"
    );
}

#[test]
fn ucsd_official_splits_load() {
    let Some(root) = common::shared_data() else {
        return;
    };
    let dir = root.join("ucsd-covid-ct");
    let val = load_cls_dir(&dir, Split::Val).unwrap();
    assert_eq!(val.iter().filter(|i| i.covid).count(), 60);
    assert_eq!(val.iter().filter(|i| !i.covid).count(), 58);
    let train = load_cls_dir(&dir, Split::Train).unwrap();
    assert_eq!(train.len(), 191 + 234);
    let names: std::collections::HashSet<_> = train.iter().map(|i| &i.name).collect();
    assert!(
        val.iter().all(|i| !names.contains(&i.name)),
        "train and val are disjoint"
    );
}

#[test]
fn unlabelled_subset_spreads_over_the_volumes_with_weak_masks() {
    let Some(root) = common::shared_data() else {
        return;
    };
    let items = load_unlabelled_dir(&root.join("majun-unlabelled"), 40).unwrap();
    assert_eq!(items.len(), 40);
    let volumes: std::collections::HashSet<_> = items
        .iter()
        .map(|i| i.name.split('_').take(4).collect::<Vec<_>>().join("_"))
        .collect();
    assert!(
        volumes.len() >= 10,
        "spread over many volumes, got {}",
        volumes.len()
    );
    assert!(items.iter().all(|i| i.weak_mask.is_some()));
}
