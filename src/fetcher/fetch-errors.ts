/** A URI (or its output_file) that can never be fetched; raised before any disk or network work. */
export class FetchUriInvalid extends Error {
  override name = 'FetchUriInvalid';
}

/** A fetch that was valid but failed (network, HTTP status, size cap, unsafe archive); names the URI. */
export class FetchFailed extends Error {
  override name = 'FetchFailed';
}
