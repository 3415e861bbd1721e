//! fm.plyr.feed.getComments: a track's timed comments in playback order.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use sqlx::PgPool;

use crate::cursor::{PositionCursor, paginate};
use crate::error::XrpcError;
use crate::params::{self, Limit, XrpcQuery};
use crate::queries;
use crate::views::{CommentView, CommentsPage};

/// Params of fm.plyr.feed.getComments.
#[derive(Debug, Deserialize)]
pub struct GetCommentsParams {
    uri: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

/// fm.plyr.feed.getComments: comments by active actors on a track, by (timestampMs, uri). A
/// missing or hidden track has no comments to show.
pub async fn get_comments(
    State(db): State<PgPool>,
    XrpcQuery(p): XrpcQuery<GetCommentsParams>,
) -> Result<Json<CommentsPage>, XrpcError> {
    let subject = params::record_uri("uri", &params::required("uri", p.uri)?)?;
    let limit = Limit::parse(p.limit.as_deref())?;
    let after = params::position_cursor(p.cursor.as_deref())?;
    let rows = queries::comment::of_track(
        &db,
        &subject.uri,
        &subject.did,
        after.as_ref(),
        limit.fetch(),
    )
    .await?;
    let (rows, cursor) = paginate(rows, limit.rows(), |row| {
        PositionCursor::after(row.timestamp_ms, &row.uri)
    });
    Ok(Json(CommentsPage {
        uri: subject.uri,
        comments: rows.into_iter().map(CommentView::from).collect(),
        cursor,
    }))
}
