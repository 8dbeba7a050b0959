//! From a `[repository]` section (DESIGN §4) to the client it names: the one place that knows
//! which `provider` values exist and what each needs (a hosted provider: a token, an owner and
//! a name), so that adding a provider never touches the `remediate` sink.

use std::path::Path;
use std::sync::Arc;

use super::RepositoryClient;
use super::github::GitHubRepository;
use super::gitlab::GitLabRepository;
use super::local::LocalRepository;
use crate::remediation::SetupError;
use crate::settings::RepositoryConfig;

/// The client `repository` names, or `None` for `provider = "none"`. A local repository keeps
/// its proposals under `data_dir/incidents`.
pub fn client_from_config(
    repository: &RepositoryConfig,
    data_dir: &Path,
) -> Result<Option<Arc<dyn RepositoryClient>>, SetupError> {
    match repository.provider.as_str() {
        "none" => Ok(None),
        "local" => Ok(Some(Arc::new(
            LocalRepository::new(repository.path.clone(), repository.branch.clone())
                .with_proposals_dir(data_dir.join("incidents")),
        ))),
        "github" => {
            let (token, base_url) = hosted(repository, "https://api.github.com")?;
            let client = GitHubRepository::new(
                base_url,
                token,
                repository.owner.clone(),
                repository.name.clone(),
                repository.branch.clone(),
            )
            .map_err(|error| SetupError(error.to_string()))?;
            Ok(Some(Arc::new(client)))
        }
        "gitlab" => {
            let (token, base_url) = hosted(repository, "https://gitlab.com")?;
            let client = GitLabRepository::new(
                base_url,
                token,
                &repository.owner,
                &repository.name,
                repository.branch.clone(),
            )
            .map_err(|error| SetupError(error.to_string()))?;
            Ok(Some(Arc::new(client)))
        }
        other => Err(SetupError(format!(
            "unknown repository provider `{other}`, expected `github`, `gitlab`, `local` or `none`"
        ))),
    }
}

/// The token and API address a hosted provider (`github`, `gitlab`) needs, checked.
fn hosted<'a>(
    repository: &'a RepositoryConfig,
    default_base_url: &'a str,
) -> Result<(&'a str, &'a str), SetupError> {
    let provider = &repository.provider;
    let token = repository.token.expose().ok_or_else(|| {
        let variable = provider.to_uppercase();
        SetupError(format!(
            "repository provider `{provider}` needs a `token` (from the environment, e.g. ${{{variable}_TOKEN}})"
        ))
    })?;
    if repository.owner.is_empty() || repository.name.is_empty() {
        return Err(SetupError(format!(
            "repository provider `{provider}` needs `owner` and `name`"
        )));
    }
    let base_url = repository.base_url.as_deref().unwrap_or(default_base_url);
    Ok((token, base_url))
}
