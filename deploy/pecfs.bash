# bash completion for pecfs (installed as /usr/share/bash-completion/completions/pecfs).
# Commands come from `pecfs --help` and each command's options from its own help (`pecfs help CMD`,
# and `pecfs gc --remote --help` for gc), so what completes is what the installed binary takes; a
# few options complete their values; anything else completes file names.
_pecfs() {
	local bin=${COMP_WORDS[0]} cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
	local cmd=${COMP_WORDS[1]} words

	if ((COMP_CWORD == 1)); then
		words=$("$bin" --help 2>/dev/null | sed -n '/^commands:/,/^$/p' | awk 'NR > 1 && NF {print $1}')
		mapfile -t COMPREPLY < <(compgen -W "$words --help --version" -- "$cur")
		return
	fi
	case $prev in
	--log-level) words="error warn info debug" ;;
	--log-format) words="text json" ;;
	--s3-addressing) words="path virtual auto" ;;
	--s3-persist) words="full pec" ;;
	esac
	if [[ -z $words && $cur == -* ]]; then
		words=$({
			"$bin" help "$cmd"
			[[ $cmd == gc ]] && "$bin" gc --remote --help
		} 2>/dev/null | grep -oE -- '--[a-z0-9][a-z0-9-]*' | sort -u)
	fi
	if [[ -n $words ]]; then
		mapfile -t COMPREPLY < <(compgen -W "$words" -- "$cur")
	else
		mapfile -t COMPREPLY < <(compgen -f -- "$cur")
	fi
}
complete -o filenames -F _pecfs pecfs
