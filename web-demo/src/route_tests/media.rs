//! Router-level tests of the médiathèque: uploads from the page (multipart), refused files with
//! their French reasons, the blob route's caching and 404, the gallery and its placeholders,
//! card covers, changing and removing an entry, and the `media` live event.

use atelier_core::media::{BlobHash, MediaKind};

use super::*;

pub(super) const BOUNDARY: &str = "----atelier-test-boundary";

/// A real JPEG, `w` × `h`, drawn here (a gradient, so it compresses like a photo).
pub(super) fn jpeg(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([(x * 255 / w) as u8, (y * 255 / h) as u8, 120])
    });
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 80)
        .encode_image(&img)
        .unwrap();
    out
}

/// A minimal PDF: what the core checks is its header and its `%%EOF`.
fn pdf() -> Vec<u8> {
    b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n".to_vec()
}

pub(super) enum Part<'a> {
    Text(&'a str, &'a str),
    File(&'a str, &'a [u8]),
}

pub(super) fn multipart(parts: &[Part<'_>]) -> Vec<u8> {
    let mut body = Vec::new();
    for p in parts {
        body.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
        match p {
            Part::Text(name, value) => {
                body.extend_from_slice(
                    format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n")
                        .as_bytes(),
                );
            }
            Part::File(name, bytes) => {
                body.extend_from_slice(
                    format!(
                        "Content-Disposition: form-data; name=\"fichier\"; filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
                    )
                    .as_bytes(),
                );
                body.extend_from_slice(bytes);
                body.extend_from_slice(b"\r\n");
            }
        }
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    body
}

async fn upload(app: &App, parts: &[Part<'_>], json: bool) -> Answer {
    let mut req = Request::builder()
        .method(Method::POST)
        .uri(format!("{}/medias", page_of(&app.ecole)))
        .header(header::HOST, "127.0.0.1:8063")
        .header(header::COOKIE, app.cookie().await)
        .header(header::ORIGIN, "http://127.0.0.1:8063")
        .header(
            header::CONTENT_TYPE,
            format!("multipart/form-data; boundary={BOUNDARY}"),
        );
    if json {
        req = req.header(header::ACCEPT, "application/json");
    }
    let response = router(app.state.clone())
        .oneshot(req.body(Body::from(multipart(parts))).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    Answer {
        status,
        headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

async fn get_with(app: &App, uri: &str, name: header::HeaderName, value: &str) -> Answer {
    let req = Request::builder()
        .uri(uri)
        .header(header::HOST, "127.0.0.1:8063")
        .header(header::COOKIE, app.cookie().await)
        .header(name, value)
        .body(Body::empty())
        .unwrap();
    let response = router(app.state.clone()).oneshot(req).await.unwrap();
    Answer {
        status: response.status(),
        headers: response.headers().clone(),
        body: String::new(),
    }
}

fn media_of(app: &App) -> Vec<atelier_core::media::Media> {
    app.replica.get(&app.ecole).unwrap().resource.media
}

#[tokio::test]
async fn photos_uploaded_from_the_page_show_in_the_gallery_with_alt_credit_and_caption() {
    let app = app();
    let (a, b) = (jpeg(900, 600), jpeg(400, 300));
    let answer = upload(
        &app,
        &[
            Part::File("facade-sud.jpg", &a),
            Part::File("preau.jpg", &b),
            // The script's per-file texts, and the shared ones the second file falls back to.
            Part::Text("credit.0", "J. Martin / CAUE 63"),
            Part::Text("caption.0", "Façade sud après travaux"),
            Part::Text("alt.0", "Mur en pisé percé de trois fenêtres"),
            Part::Text("credit", "© CAUE 63"),
            Part::Text("alt", "Préau en bois devant la cour"),
        ],
        false,
    )
    .await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
    let to = answer.headers[header::LOCATION].to_str().unwrap();
    assert!(to.contains("medias_ajoutes=2"), "{to}");
    let media = media_of(&app);
    assert_eq!(media.len(), 2, "{media:#?}");
    assert_eq!(media[0].credit.as_deref(), Some("J. Martin / CAUE 63"));
    assert_eq!(media[1].credit.as_deref(), Some("© CAUE 63"));
    assert_eq!(media[1].caption, None);

    let page = get(&app, to).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("2 fichiers ajoutés"), "{}", page.body);
    for m in &media {
        let thumb = m.thumb.unwrap().hash;
        let display = m.display.unwrap().hash;
        let alt = m.alt.as_deref().unwrap();
        assert!(
            page.body.contains(&format!(
                "<img src=\"/media/{thumb}\" alt=\"{}\"",
                maud::html! { (alt) }.into_string()
            )),
            "no thumbnail with its alt text for {}",
            m.name
        );
        assert!(page.body.contains(&format!("href=\"/media/{display}\"")));
    }
    assert!(page.body.contains("© J. Martin / CAUE 63"));
    assert!(page.body.contains("Façade sud après travaux"));
    assert!(page.body.contains("id=\"visionneuse\""));
    assert!(!page.body.contains("en cours de réception"));
    // Every image of the page has an alt attribute.
    for img in page.body.split("<img ").skip(1) {
        let tag = &img[..img.find('>').unwrap()];
        assert!(tag.contains(" alt=\""), "an image without alt: {tag}");
    }
}

#[tokio::test]
async fn the_blob_route_serves_verified_bytes_cached_for_good_and_404_until_they_arrive() {
    let app = app();
    let photo = jpeg(500, 300);
    let added = app
        .replica
        .add_media(
            &app.ecole,
            vec![atelier_core::replica::NewMedia {
                name: "a.jpg".into(),
                bytes: photo.clone(),
                credit: Some("© CAUE 63".into()),
                alt: Some("Une façade".into()),
                ..Default::default()
            }],
            5,
        )
        .unwrap();
    let hash = added[0].media.hash;
    let uri = format!("/media/{hash}");
    let r = call(&app, Method::GET, &uri, Auth::Browse, None, Body::empty()).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers[header::CONTENT_TYPE], "image/jpeg");
    assert_eq!(r.headers[header::ETAG], format!("\"{hash}\"").as_str());
    assert_eq!(
        r.headers[header::CACHE_CONTROL],
        "private, max-age=31536000, immutable"
    );
    assert_eq!(
        r.headers[header::CONTENT_LENGTH],
        photo.len().to_string().as_str()
    );
    // The body went through a lossy String: compare its length and hash through the store.
    assert_eq!(
        app.replica.media_blob(&hash).unwrap().unwrap(),
        photo,
        "the store holds the bytes added"
    );

    let again = get_with(&app, &uri, header::IF_NONE_MATCH, &format!("\"{hash}\"")).await;
    assert_eq!(again.status, StatusCode::NOT_MODIFIED);
    assert_eq!(again.headers[header::ETAG], format!("\"{hash}\"").as_str());

    let download = get(&app, &format!("{uri}?download=Fa%C3%A7ade%20sud.jpg")).await;
    assert_eq!(
        download.headers[header::CONTENT_DISPOSITION],
        "attachment; filename=\"Fa_ade sud.jpg\"; filename*=UTF-8''Fa%C3%A7ade%20sud.jpg"
    );

    let absent = BlobHash::of(b"not here");
    let missing = get(&app, &format!("/media/{absent}")).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.headers[header::CACHE_CONTROL], "no-store");
    assert!(
        missing.body.contains("pas encore arrivé"),
        "{}",
        missing.body
    );

    let bad = get(&app, "/media/pas-une-empreinte").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.body.contains("empreinte"));

    // A blob altered on disk is never served: discarded, and missing until fetched again.
    let path = app.replica.media_store().path(&hash);
    std::fs::write(&path, b"abime").unwrap();
    let altered = get(&app, &uri).await;
    assert_eq!(altered.status, StatusCode::NOT_FOUND);
    assert!(!app.replica.media_store().contains(&hash));
}

#[tokio::test]
async fn refused_files_are_said_next_to_their_fields_and_nothing_typed_is_lost() {
    let app = app();
    let photo = jpeg(300, 200);
    let cut = jpeg(300, 200)[..400].to_vec();
    let heic = b"\0\0\0\x18ftypheic\0\0\0\0mif1heic".to_vec();

    // Without script: one set of texts for every file; errors by those fields, values kept.
    let page = upload(
        &app,
        &[
            Part::File("sans-credit.jpg", &photo),
            Part::Text("caption", "Légende tapée à garder"),
            Part::Text("alt", "Une cour d'école"),
        ],
        false,
    )
    .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        page.body.contains("id=\"commun-credit-erreur\""),
        "{}",
        page.body
    );
    assert!(page.body.contains("crédit"));
    assert!(page.body.contains("value=\"Légende tapée à garder\""));
    assert!(page.body.contains("aria-invalid=\"true\""));
    assert!(page.body.contains("choisissez à nouveau les fichiers"));
    assert!(media_of(&app).is_empty());

    // With script: JSON, each error on the input of the file it names.
    let answer = upload(
        &app,
        &[
            Part::File("ok.jpg", &photo),
            Part::File("coupee.jpg", &cut),
            Part::File("iphone.heic", &heic),
            Part::File("sans-alt.jpg", &photo),
            Part::Text("credit.0", "© A"),
            Part::Text("alt.0", "Une photo"),
            Part::Text("credit.1", "© A"),
            Part::Text("alt.1", "Une photo"),
            Part::Text("credit.2", "© A"),
            Part::Text("alt.2", "Une photo"),
            Part::Text("credit.3", "© A"),
            Part::Text("alt.3", ""),
        ],
        true,
    )
    .await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
    let j = answer.json();
    assert!(
        j["error"].as_str().unwrap().contains("Rien n'a été ajouté"),
        "{j}"
    );
    let fields: Vec<(String, String)> = j["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["field"].as_str().unwrap().to_string(),
                f["message"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let on = |input: &str| {
        fields
            .iter()
            .find(|(f, _)| f == input)
            .map(|(_, m)| m.clone())
            .unwrap_or_else(|| panic!("no error on {input}: {fields:?}"))
    };
    assert!(on("fichier.1").contains("tronquée"), "{fields:?}");
    assert!(on("fichier.2").contains("HEIC") && on("fichier.2").contains("JPEG"));
    assert!(on("alt.3").contains("description"));
    assert_eq!(fields.len(), 3, "{fields:?}");
    assert!(media_of(&app).is_empty(), "one bad file adds nothing");

    // No file at all.
    let none = upload(&app, &[Part::Text("credit", "© A")], false).await;
    assert_eq!(none.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(none.body.contains("Choisissez au moins un fichier"));
    assert!(none.body.contains("value=\"© A\""));

    // Without the session cookie (a form from another site): refused.
    let forged = call(
        &app,
        Method::POST,
        &format!("{}/medias", page_of(&app.ecole)),
        Auth::None,
        Some(&format!("multipart/form-data; boundary={BOUNDARY}")),
        multipart(&[Part::File("ok.jpg", &photo)]),
    )
    .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn media_not_received_yet_show_a_placeholder_saying_what_is_missing() {
    let app = app();
    let added = app
        .replica
        .add_media(
            &app.ecole,
            vec![atelier_core::replica::NewMedia {
                name: "loin.jpg".into(),
                bytes: jpeg(800, 500),
                credit: Some("© CAUE 15".into()),
                alt: Some("Un toit de lauze".into()),
                caption: Some("Toiture".into()),
                ..Default::default()
            }],
            5,
        )
        .unwrap();
    let m = &added[0].media;
    let (thumb, display) = (m.thumb.unwrap(), m.display.unwrap());
    // As on an office that has the document but not the blobs yet.
    let thumb_bytes = app.replica.media_blob(&thumb.hash).unwrap().unwrap();
    for h in [thumb.hash, display.hash, m.hash] {
        app.replica.media_store().discard(&h);
    }
    let page = get(&app, &page_of(&app.ecole)).await;
    assert!(
        page.body.contains("Photo en cours de réception"),
        "{}",
        page.body
    );
    assert!(page.body.contains(&format!(
        "vignette ({})",
        atelier_core::fr::size(thumb.bytes)
    )));
    assert!(page.body.contains("image d'affichage ("));
    assert!(page
        .body
        .contains(&format!("data-waiting=\"{} {}\"", thumb.hash, display.hash)));
    assert!(page.body.contains("Original pas encore sur cet ordinateur"));
    // Credit and caption are in the document: shown already.
    assert!(page.body.contains("© CAUE 15") && page.body.contains("Toiture"));

    let list = get(&app, "/").await;
    assert!(list.body.contains("card-cover waiting"), "{}", list.body);
    assert!(list
        .body
        .contains(&format!("data-waiting=\"{} {}\"", thumb.hash, display.hash)));

    // The thumbnail arrives: the card shows it, and the gallery shows it with the one image
    // still missing said nowhere but in the full-size link's fallback.
    app.replica.media_store().put(&thumb_bytes).unwrap();
    let list = get(&app, "/").await;
    assert!(list
        .body
        .contains(&format!("<img src=\"/media/{}\" alt=\"\"", thumb.hash)));
    assert!(!list.body.contains("card-cover waiting"));
    let page = get(&app, &page_of(&app.ecole)).await;
    assert!(page.body.contains(&format!(
        "<img src=\"/media/{}\" alt=\"Un toit de lauze\"",
        thumb.hash
    )));
}

#[tokio::test]
async fn cards_show_the_first_photo_as_a_decorative_lazy_image() {
    let app = app();
    app.replica
        .add_media(
            &app.ecole,
            vec![
                atelier_core::replica::NewMedia {
                    name: "notice.pdf".into(),
                    bytes: pdf(),
                    ..Default::default()
                },
                atelier_core::replica::NewMedia {
                    name: "a.jpg".into(),
                    bytes: jpeg(600, 400),
                    credit: Some("© CAUE 63".into()),
                    alt: Some("Une façade".into()),
                    ..Default::default()
                },
            ],
            5,
        )
        .unwrap();
    let cover = app
        .replica
        .listing(&app.ecole)
        .unwrap()
        .unwrap()
        .cover
        .unwrap();
    let list = get(&app, "/").await;
    assert!(
        list.body.contains(&format!(
            "<img src=\"/media/{cover}\" alt=\"\" loading=\"lazy\""
        )),
        "{}",
        list.body
    );
    let fragment = get(&app, "/fragments/resultats?q=pis%C3%A9").await;
    assert!(fragment.body.contains(&format!("/media/{cover}")));

    // The PDF is listed with its name, type, size and a download link.
    let page = get(&app, &page_of(&app.ecole)).await;
    let doc = media_of(&app)
        .into_iter()
        .find(|m| m.kind == MediaKind::Document)
        .unwrap();
    assert!(page
        .body
        .contains(&format!("/media/{}?download=notice.pdf", doc.hash)));
    assert!(page
        .body
        .contains(&format!("PDF, {}", atelier_core::fr::size(doc.bytes))));
}

#[tokio::test]
async fn an_entrys_texts_change_and_it_can_be_removed_after_confirmation() {
    let app = app();
    let added = app
        .replica
        .add_media(
            &app.ecole,
            vec![atelier_core::replica::NewMedia {
                name: "a.jpg".into(),
                bytes: jpeg(300, 200),
                credit: Some("© CAUE 63".into()),
                alt: Some("Une façade".into()),
                ..Default::default()
            }],
            5,
        )
        .unwrap();
    let hash = added[0].media.hash;
    let base = format!("{}/medias", page_of(&app.ecole));
    let media_page = get(&app, &base).await;
    assert_eq!(media_page.status, StatusCode::OK);
    assert!(media_page
        .body
        .contains("Ajouter des photos ou des documents"));
    assert!(media_page.body.contains("type=\"file\""));
    assert!(media_page.body.contains("multiple"));
    // The plain explanations come from core's field table.
    assert!(media_page
        .body
        .contains(atelier_core::fields::field("media.alt").unwrap().help));

    let ok = post_form(
        &app,
        &format!("{base}/{hash}"),
        &[
            ("credit", "© Jeanne Martin"),
            ("caption", "Vue du sud"),
            ("alt", "Une façade"),
        ],
    )
    .await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER, "{}", ok.body);
    let m = &media_of(&app)[0];
    assert_eq!(m.credit.as_deref(), Some("© Jeanne Martin"));
    assert_eq!(m.caption.as_deref(), Some("Vue du sud"));

    let refused = post_form(
        &app,
        &format!("{base}/{hash}"),
        &[
            ("credit", ""),
            ("caption", "Légende gardée"),
            ("alt", "Une façade"),
        ],
    )
    .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(refused.body.contains("-credit-erreur"), "{}", refused.body);
    assert!(refused.body.contains("value=\"Légende gardée\""));
    assert_eq!(media_of(&app)[0].credit.as_deref(), Some("© Jeanne Martin"));

    let confirm = get(&app, &format!("{base}/{hash}/retirer")).await;
    assert_eq!(confirm.status, StatusCode::OK);
    assert!(confirm.body.contains("Oui, retirer ce fichier"));
    assert!(media_of(&app).len() == 1, "asking removes nothing");
    let removed = post_form(&app, &format!("{base}/{hash}/retirer"), &[]).await;
    assert_eq!(removed.status, StatusCode::SEE_OTHER);
    assert!(media_of(&app).is_empty());
    let again = post_form(&app, &format!("{base}/{hash}/retirer"), &[]).await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_blob_arriving_is_a_media_event_for_open_pages() {
    use futures::StreamExt;
    let app = app();
    let req = Request::builder()
        .uri("/events")
        .header(header::HOST, "127.0.0.1:8063")
        .header(header::COOKIE, app.cookie().await)
        .body(Body::empty())
        .unwrap();
    let response = router(app.state.clone()).oneshot(req).await.unwrap();
    let mut stream = response.into_body().into_data_stream();
    let _sync = stream.next().await.unwrap().unwrap();
    let hash = BlobHash::of(b"a photo");
    app.state.media_arrived(&hash);
    let next = tokio::time::timeout(std::time::Duration::from_secs(5), stream.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let next = String::from_utf8(next.to_vec()).unwrap();
    assert!(
        next.contains("event: media") && next.contains(&hash.to_hex()),
        "{next}"
    );
}
