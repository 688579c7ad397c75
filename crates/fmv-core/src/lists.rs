//! Checks on the lists a user names: classes, channels.

/// The first item that appears again later in `items`, as its second appearance finds it.
pub(crate) fn first_repeated<T: PartialEq>(items: &[T]) -> Option<&T> {
    items
        .iter()
        .enumerate()
        .find_map(|(i, x)| items[..i].contains(x).then_some(x))
}

#[cfg(test)]
mod tests {
    use super::first_repeated;

    #[test]
    fn finds_the_first_item_named_again() {
        assert_eq!(first_repeated(&[3, 1, 4, 1, 3]), Some(&1));
        assert_eq!(first_repeated(&["a", "b"]), None);
        assert_eq!(first_repeated::<u8>(&[]), None);
    }
}
