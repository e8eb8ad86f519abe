"""Contains all the data models used in inputs/outputs"""

from .box import Box
from .delivery_attempt_out import DeliveryAttemptOut
from .delivery_list_out import DeliveryListOut
from .delivery_out import DeliveryOut
from .error_body import ErrorBody
from .error_out import ErrorOut
from .face_label_in import FaceLabelIn
from .face_out import FaceOut
from .face_out_landmarks import FaceOutLandmarks
from .gallery_face_out import GalleryFaceOut
from .gallery_face_out_landmarks import GalleryFaceOutLandmarks
from .gallery_in import GalleryIn
from .gallery_list_out import GalleryListOut
from .gallery_out import GalleryOut
from .get_v1_images_status import GetV1ImagesStatus
from .get_v1_jobs_job_id_items_status import GetV1JobsJobIdItemsStatus
from .get_v1_jobs_kind import GetV1JobsKind
from .get_v1_jobs_status import GetV1JobsStatus
from .image_listed import ImageListed
from .image_out import ImageOut
from .image_page import ImagePage
from .image_upload_in import ImageUploadIn
from .job_created_out import JobCreatedOut
from .job_item_out import JobItemOut
from .job_items_out import JobItemsOut
from .job_listed import JobListed
from .job_listed_result import JobListedResult
from .job_out import JobOut
from .job_out_result import JobOutResult
from .job_page import JobPage
from .key_in import KeyIn
from .key_in_scope import KeyInScope
from .key_list_out import KeyListOut
from .key_out import KeyOut
from .label_erased_out import LabelErasedOut
from .label_out import LabelOut
from .label_page import LabelPage
from .match_out import MatchOut
from .post_v1_archives_files_body import PostV1ArchivesFilesBody
from .post_v1_archives_files_body_label_from import PostV1ArchivesFilesBodyLabelFrom
from .post_v1_archives_json_body import PostV1ArchivesJsonBody
from .post_v1_archives_json_body_label_from import PostV1ArchivesJsonBodyLabelFrom
from .post_v1_archives_label_from import PostV1ArchivesLabelFrom
from .progress import Progress
from .rotate_secret_in import RotateSecretIn
from .same_person_out import SamePersonOut
from .search_created_out import SearchCreatedOut
from .search_face_out import SearchFaceOut
from .search_face_out_landmarks import SearchFaceOutLandmarks
from .search_in import SearchIn
from .search_out import SearchOut
from .search_out_query import SearchOutQuery
from .search_waited_out import SearchWaitedOut
from .search_waited_out_query import SearchWaitedOutQuery
from .webhook_in import WebhookIn
from .webhook_in_events_item import WebhookInEventsItem
from .webhook_list_out import WebhookListOut
from .webhook_out import WebhookOut

__all__ = (
    "Box",
    "DeliveryAttemptOut",
    "DeliveryListOut",
    "DeliveryOut",
    "ErrorBody",
    "ErrorOut",
    "FaceLabelIn",
    "FaceOut",
    "FaceOutLandmarks",
    "GalleryFaceOut",
    "GalleryFaceOutLandmarks",
    "GalleryIn",
    "GalleryListOut",
    "GalleryOut",
    "GetV1ImagesStatus",
    "GetV1JobsJobIdItemsStatus",
    "GetV1JobsKind",
    "GetV1JobsStatus",
    "ImageListed",
    "ImageOut",
    "ImagePage",
    "ImageUploadIn",
    "JobCreatedOut",
    "JobItemOut",
    "JobItemsOut",
    "JobListed",
    "JobListedResult",
    "JobOut",
    "JobOutResult",
    "JobPage",
    "KeyIn",
    "KeyInScope",
    "KeyListOut",
    "KeyOut",
    "LabelErasedOut",
    "LabelOut",
    "LabelPage",
    "MatchOut",
    "PostV1ArchivesFilesBody",
    "PostV1ArchivesFilesBodyLabelFrom",
    "PostV1ArchivesJsonBody",
    "PostV1ArchivesJsonBodyLabelFrom",
    "PostV1ArchivesLabelFrom",
    "Progress",
    "RotateSecretIn",
    "SamePersonOut",
    "SearchCreatedOut",
    "SearchFaceOut",
    "SearchFaceOutLandmarks",
    "SearchIn",
    "SearchOut",
    "SearchOutQuery",
    "SearchWaitedOut",
    "SearchWaitedOutQuery",
    "WebhookIn",
    "WebhookInEventsItem",
    "WebhookListOut",
    "WebhookOut",
)
