//! Follows the network and folds fm.plyr.* records into the Postgres view.
