//! The embedder returns each text's own vector, in the caller's order, whatever the batch:
//! it embeds in length order internally, so this is what keeps it honest.

use parley_knowledge::{Embedder, FastEmbedder};

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[test]
fn a_mixed_batch_gives_each_text_its_own_vector_in_order() {
    // Uncached, so every vector really comes from the model.
    let embedder = FastEmbedder::load(&parley_testkit::checkout_embedder_config()).unwrap();
    let texts: Vec<String> = [
        "Returns are free within 30 days of delivery for unworn items in their original packaging; \
         start a return from the link in your shipping confirmation email and print the prepaid label. \
         Refunds go back to the original payment method within 5 business days of the item reaching us.",
        "XL?",
        "Ridgeline 2 Waterproof Hiking Boot, sizes 7 to 13, in Black and Brown",
        "where is my order",
        "Standard shipping takes 3 to 5 business days.",
    ]
    .map(str::to_owned)
    .to_vec();
    let batch = embedder.embed(&texts).unwrap();
    assert_eq!(batch.len(), texts.len());
    for (i, text) in texts.iter().enumerate() {
        let alone = embedder.embed(std::slice::from_ref(text)).unwrap().remove(0);
        let same = dot(&batch[i], &alone);
        assert!(same > 0.999, "text {i} in a batch vs alone: cosine {same}");
        for (j, other) in batch.iter().enumerate().filter(|(j, _)| *j != i) {
            assert!(
                dot(other, &alone) < 0.99,
                "text {i}'s vector also sits at position {j}"
            );
        }
    }
}
